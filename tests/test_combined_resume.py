"""The combined model's staged run, interrupted mid-stage and resumed (its own file, so
the suite's two workers can run it beside the other staged-run test)."""

from __future__ import annotations

import keras
import pandas as pd
import pytest
from test_combined import WeightLog, combined_config

import tf_twohead as tt
from tf_twohead import config
from tf_twohead.training import resume as runs


@pytest.mark.slow
def test_staged_run_resumes_mid_stage(tmp_path, dataset):
    from tf_twohead.training import run as training

    class StopAfter(keras.callbacks.Callback):  # Ctrl-C after N epochs of the whole run
        def __init__(self, n):
            super().__init__()
            self.n, self.seen = n, 0

        def on_epoch_end(self, epoch, logs=None):
            self.seen += 1
            if self.seen == self.n:
                raise KeyboardInterrupt

    cfg = combined_config(tmp_path, dataset, "train.steps_per_epoch=2",
                          "train.stages={coarse: 0, fine: 2, frozen: 0, unfrozen: 1}")
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, verbose=0, callbacks=[StopAfter(1)])  # after fine's epoch 1
    fine_dir = cfg.run_dir / "stages" / "fine"
    assert runs.resumable_state(fine_dir)["epoch"] == 1
    assert not (cfg.run_dir / "best.keras").exists()
    with pytest.raises(tt.RunExistsError, match="--resume"):
        training.train(cfg, verbose=0)

    log = WeightLog()
    training.train(cfg, resume=True, verbose=0, callbacks=[log])
    assert [f["name"] for f in log.fits] == ["softmax", "combined"]  # fine resumed
    resumed = keras.saving.load_model(fine_dir / "last.keras", compile=True)
    assert int(resumed.optimizer.iterations) == 4  # 2 epochs x 2 steps: one cycle, continued
    history = pd.read_csv(cfg.run_dir / "history.csv")
    assert list(zip(history["stage"], history["stage_epoch"])) == [
        ("fine", 1), ("fine", 2), ("unfrozen", 1)]
    assert list(history["epoch"]) == [1, 2, 3]
    with pytest.raises(tt.RunExistsError, match="train.stages differ"):
        training.train(config.load_config(cfg.run_dir / "config.yaml", ["train.stages.fine=3"]),
                       resume=True, verbose=0)

