import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import Interrupt, tiny_config

import tf_twohead as tt
from tf_twohead import models
from tf_twohead.core.fileio import atomic_path
from tf_twohead.data.splits import DataError
from tf_twohead.pretrained import load as pretrained
from tf_twohead.recipe import compiling as recipe
from tf_twohead.training import loop as fitting
from tf_twohead.training import resume as runs
from tf_twohead.training import run as training


def test_loss_is_weighted_two_to_one(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset)
    model = tt.compile_model(pretrained.build_model(cfg), cfg)
    x = np.zeros((4, 32, 32, 3), np.uint8)
    y = {"main": np.ones((4, 1), np.float32), "aux": np.zeros((4, 1), np.float32)}
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(2 * logs["main_loss"] + logs["aux_loss"], rel=1e-4)


def test_step_decay_schedule(dataset, tmp_path):
    schedule = recipe.step_decay(tiny_config(tmp_path, dataset))
    assert [round(schedule(e), 8) for e in (0, 3, 4, 7, 8)] == [1e-3, 1e-3, 1e-4, 1e-4, 1e-5]


@pytest.mark.slow
def test_interrupted_run_keeps_best_and_resumes(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "train.epochs=3")
    run = cfg.run_dir
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, verbose=0, callbacks=[Interrupt(after=2)])
    state = json.loads((run / "train_state.json").read_text())
    assert state["epoch"] == 2
    best_before = (run / "best.keras").read_bytes()
    keras.saving.load_model(run / "best.keras", compile=False)  # intact and loadable

    with pytest.raises(tt.RunExistsError, match="--resume"):
        training.train(cfg, verbose=0)  # a plain re-run must not clobber the best model
    assert (run / "best.keras").read_bytes() == best_before

    final = training.train(cfg, resume=True, verbose=0)
    assert final["epoch"] == 3
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]  # counted from 1, as people count
    assert final["best"] == pytest.approx(history["val_main_f1"].max())


@pytest.mark.slow
def test_resume_refuses_a_different_model(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "train.epochs=2")
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, verbose=0, callbacks=[Interrupt(after=1)])
    other = tiny_config(tmp_path, dataset, "train.epochs=2", "model.head_width=32")
    with pytest.raises(tt.RunExistsError, match="model.head_width differ"):
        training.train(other, resume=True, verbose=0)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "best.keras"
    target.write_bytes(b"old model")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a mod")
            raise RuntimeError("killed mid-save")
    assert target.read_bytes() == b"old model"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.slow
def test_softmax_baseline_trains_with_per_head_metrics(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "model.kind=softmax", "exp=soft", "train.epochs=1")
    state = training.train(cfg, verbose=0)
    history = pd.read_csv(cfg.run_dir / "history.csv")
    for column in ("val_main_f1", "val_aux_precision", "val_main_auc", "loss"):
        assert column in history
    assert state["monitor"] == "val_main_f1"
    model = keras.saving.load_model(cfg.run_dir / "last.keras")  # custom metrics reload
    assert model.output_names == ["probs"]


def test_bad_data_fails_before_training_starts(dataset, tmp_path):
    (dataset / "test.csv").write_text((dataset / "test.csv").read_text() + "nope.jpg,1\n")
    cfg = tiny_config(tmp_path, dataset)
    with pytest.raises(DataError, match="test.csv:19: 'nope.jpg' missing file"):
        training.train(cfg, verbose=0)
    assert (cfg.run_dir / "config.yaml").is_file()
    assert not (cfg.run_dir / "last.keras").exists()


def test_missing_file_unknown_id_and_truncated_jpeg_in_one_report(dataset, tmp_path):
    """A user fixes the data once: every kind of bad row is named before training."""
    good = (dataset / "screens" / "train 2.jpg").read_bytes()
    (dataset / "screens" / "train 3.jpg").write_bytes(good[: len(good) // 3])  # truncated
    csv = dataset / "train.csv"
    csv.write_text(csv.read_text() + "screens/gone.jpg,2\ndocuments/train 0.jpg,9\n")
    cfg = tiny_config(tmp_path, dataset)
    with pytest.raises(DataError) as err:
        training.train(cfg, verbose=0)
    text = str(err.value)
    assert "train.csv:16: 'screens/train 3.jpg' undecodable image" in text
    assert "train.csv:19: 'screens/gone.jpg' missing file" in text
    assert "train.csv:20: 'documents/train 0.jpg' unknown class id: 9 is not in 0..2" in text
    assert not (cfg.run_dir / "last.keras").exists()


def _checkpoint(tmp_path, model):
    callback = fitting.RunCheckpoint(tmp_path, "val_main_f1")
    callback.set_model(model)
    return callback


def test_best_checkpoint_ties_are_broken_by_validation_loss(tmp_path):
    """F1 stuck at 0.0: the epoch with the lowest val_loss is kept, not the first."""
    model = models.build("two_head", 32, head_width=8)
    callback = _checkpoint(tmp_path, model)
    epochs = [(0.0, 0.90), (0.0, 0.70), (0.0, 0.80), (0.4, 0.95), (0.4, 0.95)]
    for epoch, (f1, loss) in enumerate(epochs):
        callback.on_epoch_end(epoch, {"val_main_f1": f1, "val_loss": loss})
        if epoch == 2:
            assert callback.best_epoch == 2  # the lowest loss among the 0.0 epochs
    assert callback.best_epoch == 4  # a higher F1 wins whatever the loss; equal loss: first
    state = json.loads((tmp_path / "train_state.json").read_text())
    assert (state["best"], state["best_epoch"], state["best_tie_break"]) == (0.4, 4, 0.95)


def test_resume_keeps_the_tie_break_of_the_best_epoch(tmp_path):
    state = {"best": 0.0, "best_epoch": 2, "best_tie_break": 0.5}
    callback = fitting.RunCheckpoint(tmp_path, "val_main_f1",
                                      **runs.checkpoint_state(state))
    assert not callback.is_better(0.0, 0.6)
    assert callback.is_better(0.0, 0.4)


def test_compile_uses_the_configured_adam(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "train.weight_decay_mode=decoupled",
                      "train.adam_epsilon=1e-7")
    model = tt.compile_model(pretrained.build_model(cfg), cfg)
    optimizer = model.optimizer
    assert (optimizer.weight_decay_mode, optimizer.epsilon) == ("decoupled", 1e-7)
    assert optimizer.weight_decay == pytest.approx(1e-4) and optimizer.l2 == 0.0
    default = tt.compile_model(pretrained.build_model(tiny_config(tmp_path, dataset)),
                                     tiny_config(tmp_path, dataset)).optimizer
    assert (default.weight_decay_mode, default.l2, default.epsilon) == ("l2", 1e-4, 1e-8)


def test_curves_are_drawn_at_most_every_so_often_and_after_the_last_epoch(tmp_path,
                                                                          monkeypatch):
    from tf_twohead.training import loop

    drawn = []
    monkeypatch.setattr(loop, "plot_history", lambda *a, **k: drawn.append(a[0]))
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    plot = loop.PlotCurves(tmp_path, every=3600)
    plot.set_params({"epochs": 5})
    plot.on_train_begin()
    for epoch in range(5):
        plot.on_epoch_end(epoch)
    assert len(drawn) == 1  # quick epochs: only the last one draws
    now = [0.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: now[0])
    plot = loop.PlotCurves(tmp_path, every=30)
    plot.set_params({"epochs": 5})
    plot.on_train_begin()  # at 0 s
    for epoch, end in enumerate((10.0, 40.0, 50.0, 75.0, 80.0)):
        now[0] = end
        plot.on_epoch_end(epoch)
    # 40 s: 30 s after the start; 75 s: 30 s after that drawing; 80 s: the last epoch.
    assert len(drawn) == 4
    plot = loop.PlotCurves(tmp_path, every=0)
    plot.set_params({"epochs": 5})
    plot.on_train_begin()
    for epoch in range(5):
        plot.on_epoch_end(epoch)
    assert len(drawn) == 9  # slow epochs: every one
