"""The run folder's one owner (`core.run_folder`): what `--overwrite` clears, what
`clean` may delete, and the one best-epoch rule, wherever a best epoch is shown."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

import tf_twohead as tt
from tf_twohead import cli
from tf_twohead.core import best, run_folder
from tf_twohead.plots.curves import best_epoch


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name not in (run_folder.LOCK, run_folder.LOCK_INFO))


@pytest.mark.slow
def test_a_run_folder_holds_the_run_and_overwrite_leaves_nothing_of_it(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset)
    state = tt.train(cfg, verbose=0)
    run = cfg.run_dir
    for name in ("config.yaml", "best.keras", "last.keras", "history.csv", "curves.png",
                 "train_state.json", run_folder.MARKER):
        assert (run / name).is_file(), name
    assert any((run / "logs").rglob("*tfevents*"))
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 2
    for column in ("main_f1", "aux_f1", "val_main_f1", "val_aux_auc", "main_precision",
                   "aux_recall", "main_loss", "aux_loss"):
        assert column in history
    assert state["monitor"] == "val_main_f1"
    assert state["best"] == pytest.approx(history["val_main_f1"].max())
    assert state["best_epoch"] == best_epoch(history, "val_main_f1")[0]  # curves.png's mark
    assert sorted(tt.load_model(run / "best.keras").output_names) == ["aux", "main"]

    tt.evaluate(cfg.run_dir, latency_images=2, progress=False)
    tt.to_tflite(cfg.run_dir, parity_images=8, progress=False)
    before = listing(cfg.run_dir)
    for produced in ("metrics.json", "report.md", "exports/best.tflite", "history.csv",
                     "curves.png", "train_state.json", "last.keras"):
        assert produced in before, before
    (cfg.run_dir / "best.keras").write_bytes(b"the old model")
    cfg = tiny_config(tmp_path, dataset, "train.epochs=1", "train.steps_per_epoch=2")
    tt.train(cfg, overwrite=True, verbose=0)
    after = listing(cfg.run_dir)
    # Only what this run wrote: no metrics, report or export of the old model survive,
    # so `compare` can never report them as the new model's.
    assert not [p for p in after if p.startswith(("metrics", "report", "exports", "pr_",
                                                  "confusion", "errors_"))], after
    assert {"best.keras", "last.keras", "config.yaml", "history.csv", "train_state.json",
            run_folder.MARKER} <= set(after)
    assert (cfg.run_dir / "best.keras").read_bytes() != b"the old model"
    assert len(pd.read_csv(cfg.run_dir / "history.csv")) == 1


def test_overwrite_refuses_a_folder_it_did_not_make_for_plain_and_staged_runs(dataset,
                                                                              tmp_path):
    for kind in ("two_head", "combined"):
        extra = ["data.coarse={a: [0, 1], b: [2]}"] if kind == "combined" else []
        cfg = tiny_config(tmp_path, dataset, f"exp=mine_{kind}", f"model.kind={kind}", *extra)
        cfg.run_dir.mkdir(parents=True)
        (cfg.run_dir / "best.keras").write_bytes(b"a user's own model")
        (cfg.run_dir / "stages").mkdir()
        (cfg.run_dir / "stages" / "notes.txt").write_text("keep me")
        with pytest.raises(tt.RunExistsError, match="did not create it"):
            tt.train(cfg, overwrite=True, verbose=0)
        assert (cfg.run_dir / "best.keras").read_bytes() == b"a user's own model"
        assert (cfg.run_dir / "stages" / "notes.txt").read_text() == "keep me"


def make_run(folder, ours=True):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("exp: x\n")
    (folder / "best.keras").write_bytes(b"x" * 100)
    if ours:
        (folder / run_folder.MARKER).write_text("{}")
    return folder


def test_clean_refuses_a_folder_that_merely_holds_a_config(tmp_path, capsys):
    foreign = make_run(tmp_path / "theirs", ours=False)
    assert cli.main(["clean", str(foreign)]) == 2
    assert "not a folder tf-twohead made" in capsys.readouterr().err
    assert (foreign / "best.keras").is_file()
    link = tmp_path / "link"
    link.symlink_to(make_run(tmp_path / "ours"))
    assert cli.main(["clean", str(link)]) == 2  # never through a symlink
    assert "symlink" in capsys.readouterr().err and (tmp_path / "ours" / "best.keras").is_file()
    assert cli.main(["clean", str(tmp_path / "ours")]) == 0
    assert not (tmp_path / "ours").exists()


def test_clean_refuses_a_run_that_is_being_written(tmp_path, capsys):
    run = make_run(tmp_path / "busy")
    with run_folder.lock_run_dir(run):
        assert cli.main(["clean", str(run)]) == 2
        assert "being written by" in capsys.readouterr().err
    assert (run / "best.keras").is_file()


def fake_cache(root, name="train-32px-0123456789abcdef"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "images.npy").write_bytes(b"\0" * 64)  # no meta.json: an interrupted build
    return folder


def test_clean_finds_caches_wherever_data_cache_dir_put_them(tmp_path, capsys):
    runs, elsewhere, outside = tmp_path / "runs", tmp_path / "elsewhere", tmp_path / "outside"
    run = make_run(runs / "a")
    (run / "config.yaml").write_text(f"data:\n  cache_dir: {elsewhere}\n")
    cache = fake_cache(elsewhere)
    victim = fake_cache(outside)
    (elsewhere / "val-32px-fedcba9876543210").symlink_to(victim)  # never followed
    (elsewhere / "notes").mkdir()  # not a cache's name: never touched
    assert cli.main(["clean", "--caches", "--output-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "incomplete" in out and str(cache) in out
    assert not cache.exists() and victim.is_dir() and (elsewhere / "notes").is_dir()
    assert (elsewhere / "val-32px-fedcba9876543210").is_symlink()


def test_clean_trials_skips_symlinked_trial_files(tmp_path):
    search = make_run(tmp_path / "runs" / "search")
    (search / "search.yaml").write_text("exp: search\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "last.keras").write_bytes(b"not a trial's")
    for name, link in (("trial_00", False), ("trial_01", True)):
        trial = search / name
        trial.mkdir()
        (trial / "trial.json").write_text(json.dumps({"status": "COMPLETED"}))
        if link:
            (trial / "last.keras").symlink_to(outside / "last.keras")
        else:
            (trial / "last.keras").write_bytes(b"x")
    assert cli.main(["clean", "--trials", "--output-dir", str(tmp_path / "runs")]) == 0
    assert not (search / "trial_00" / "last.keras").exists()
    assert (outside / "last.keras").read_bytes() == b"not a trial's"


@pytest.mark.parametrize("name", ["x/../../victim", "trial_../../victim", "victim",
                                  "trial_a b"])
def test_a_trial_folder_must_be_a_plain_trial_of_our_search(tmp_path, name):
    search = make_run(tmp_path / "search")
    with pytest.raises(tt.RunExistsError, match="not a trial folder"):
        run_folder.claim_trial_dir(search / name)
    assert run_folder.claim_trial_dir(search / "trial_03") == search / "trial_03"
    assert (search / "trial_03" / run_folder.MARKER).is_file()
    with pytest.raises(tt.RunExistsError, match="not a trial folder"):
        run_folder.claim_trial_dir(make_run(tmp_path / "theirs", ours=False) / "trial_00")
    other = make_run(tmp_path / "another_run")  # ours, but not this search's
    with pytest.raises(tt.RunExistsError, match="not a trial folder"):
        run_folder.claim_trial_dir(search / ".." / "another_run" / "trial_00", search)
    with pytest.raises(tt.RunExistsError, match="not a trial folder"):
        run_folder.claim_trial_dir(other / "trial_00", search)
    assert not (other / "trial_00").exists()


def history(scores, losses):
    return pd.DataFrame({"epoch": np.arange(1, len(scores) + 1), "val_main_f1": scores,
                         "val_loss": losses})


@pytest.mark.parametrize("scores, losses, expected", [
    ([0.5, 0.7, 0.7], [0.3, 0.5, 0.4], 3),  # a tie on F1: the lower validation loss
    ([0.0, 0.0, 0.0], [0.9, 0.8, 0.85], 2),  # F1 stuck at 0: the lowest loss, not epoch 1
    ([math.nan, 0.2, 0.1], [0.1, 0.5, 0.4], 2),  # NaN never wins, even first
    ([0.4, 0.4], [math.nan, 0.5], 2),  # a NaN loss loses the tie
    ([math.nan, math.nan], [0.1, 0.2], None),
])
def test_curves_mark_the_epoch_the_checkpoint_keeps(scores, losses, expected):
    marked = best_epoch(history(scores, losses), "val_main_f1")
    assert (marked[0] if marked else None) == expected
    keys = [best.rank_key(s, t) for s, t in zip(scores, losses)]
    if expected is not None:  # the rule RunCheckpoint and the staged run use
        assert min(range(len(keys)), key=keys.__getitem__) + 1 == expected


@pytest.mark.parametrize("trial_id", ["x/../../../victim", "..", "a b", "", "x" * 65, "a\x00"])
def test_a_worker_refuses_a_crafted_trial_id_before_making_a_folder(tmp_path, trial_id):
    from tf_twohead.tuning.tuners import _TrialDirs

    class Base:
        project_dir = str(tmp_path / "search")

        def get_trial_dir(self, trial_id):
            path = tmp_path / "search" / f"trial_{trial_id}"
            path.mkdir(parents=True)  # as Keras Tuner's does
            return str(path)

    tuner = type("Tuner", (_TrialDirs, Base), {})()
    with pytest.raises(tt.RunExistsError, match="Refusing trial id"):
        tuner.get_trial_dir(trial_id)
    assert not (tmp_path / "search").exists() and not (tmp_path / "victim").exists()
    assert tuner.get_trial_dir("07").endswith("trial_07")
