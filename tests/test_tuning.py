"""Searches: the space is checked before any trial; a search writes its reports, resumes
after an interruption, honours constraints, and its best config trains."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SHALLOW, Interrupt

import tf_twohead as tt
from tf_twohead import cli, config
from tf_twohead.config import ConfigError
from tf_twohead.tuning import results as tuning_results
from tf_twohead.tuning import space as tuning_space
from tf_twohead.tuning import tuners as tuning_tuners


def tune_config(tmp_path, root, *overrides):
    """A grid over two head widths, 1-2 tiny epochs per trial, at 32 px."""
    return config.load_config("configs/tune_head_width.yaml", [
        f"data.root={root}", "data.img_size=32", f"output_dir={tmp_path / 'runs'}", SHALLOW,
        "train.batch_size=8", "tune.oracle=grid", "tune.epochs=2", "tune.latency_images=3",
        "tune.space={model.head_width: [8, 64]}", "tune.constraints={}", *overrides])


@pytest.mark.parametrize("space, message", [
    ("{model.head_widht: [8]}", r"tune.space.model.head_widht.*Did you mean"),
    ("{model.head_width: [8, big]}", r"tune.space.model.head_width.*'big'.*Integer"),
    ("{model.head_width: [0, 8]}", r"model.head_width must be a positive integer"),
    ("{model.width: [0.5, 0.7]}", r"model.width must be one of"),
    ("{model.head_widths.other: [8]}", r"model.head_widths.other must be a width for one of"),
    ("{data.root: [a, b]}", r"tune.space.data.root: data.root cannot be searched"),
    ("{model.head_width: []}", r"non-empty list"),
    ("{train.learning_rate: {min: 0.01, max: 0.001}}", r"min < max"),
    ("{train.learning_rate: {min: 0, max: 0.1, log: true}}", r"log range needs min > 0"),
    ("{train.learning_rate: {low: 0.1}}", r"needs min and max"),
    ("{model.head_width: 8}", r"list of choices or a range"),
])
def test_a_bad_space_is_an_error_naming_the_key(space, message):
    cfg = config.load_config("configs/tune_head_width.yaml", [f"tune.space={space}"])
    with pytest.raises(ConfigError, match=message):
        tuning_space.search_space(cfg)


def test_space_values_take_the_key_type():
    cfg = config.load_config("configs/tune_head_width.yaml", [
        "tune.space={model.width: [0.5, 1], train.learning_rate: {min: 1e-4, max: 1e-2, "
        "log: true}, model.head_width: {min: 16, max: 64, step: 16}}"])
    width, lr, head = tuning_space.search_space(cfg)
    assert width.values == (0.5, 1.0) and all(isinstance(v, float) for v in width.values)
    assert (lr.integer, lr.log, head.integer, head.step) == (False, True, True, 16)


@pytest.mark.parametrize("override, message", [
    ("tune.objective=val_main_f2", r"tune.objective must be null or a logged validation"),
    ("tune.oracle=evolution", r"tune.oracle must be one of"),
    ("tune.constraints={size_mb: 1}", r"tune.constraints.size_mb must be one of"),
])
def test_bad_tune_settings_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load_config("configs/tune_head_width.yaml", [override])


def test_pareto_mask_keeps_the_non_dominated():
    f1 = [0.50, 0.60, 0.55, 0.60, 0.40]
    kb = [300, 700, 400, 650, 300]
    assert tuning_results.pareto_mask(f1, kb).tolist() == [True, False, True, True, False]
    assert tuning_results.pareto_mask([0.3, 0.2], [10, 5], maximize=False).tolist() == [
        False, True]  # minimising the objective (e.g. val_loss)


def test_worker_never_overwrites_and_needs_its_chief(tmp_path):
    cfg = tune_config(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="never used on a worker"):
        tt.tune(cfg, overwrite=True, chief="127.0.0.1:1", worker="1")
    with pytest.raises(ValueError, match="needs --chief"):
        tt.tune(cfg, worker="1")


@pytest.mark.slow
def test_search_reports_resume_constraints_and_best_config(dataset, tmp_path, capsys):
    cfg = tune_config(tmp_path, dataset, "tune.constraints={params: 60000}")
    run = cfg.run_dir
    hypermodel = tt.TwoHeadHyperModel(cfg)
    hypermodel.prepare()
    tuner = tuning_tuners.make_tuner(hypermodel)
    tuner.save()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after the first epoch of the first trial
        tuner.search(callbacks=[Interrupt(after=1)], verbose=0)
    (first,) = run.glob("trial_*")  # ids are zero-padded to the digits of max_trials
    assert json.loads((first / "train_state.json").read_text())["epoch"] == 1

    summary = tt.tune(cfg)  # the same command again continues the search
    assert "Resuming" in capsys.readouterr().out
    assert len(pd.read_csv(first / "history.csv")) == 2  # trial 0 went on from epoch 1
    for name in ("trials.csv", "trials.md", "pareto.csv", "pareto.png", "best_config.yaml"):
        assert (run / name).is_file(), name
    trials = pd.read_csv(run / "trials.csv", dtype={"trial": str}).sort_values(
        "model.head_width")
    assert trials["status"].tolist() == ["COMPLETED", "COMPLETED"]
    narrow, wide = trials.to_dict("records")
    assert narrow["params"] < 60_000 < wide["params"]
    assert narrow["tflite_kb"] < wide["tflite_kb"]
    for row in (narrow, wide):
        assert 0 <= row["val_main_f1"] <= 1 and 0 <= row["val_aux_f1"] <= 1
        assert row["latency_ms"] > 0 and row["train_seconds"] > 0 and row["best_epoch"] in (1, 2)
        tflite = run / f"trial_{row['trial']}" / "exports" / "best.dynamic.tflite"
        assert abs(tflite.stat().st_size / 1024 - row["tflite_kb"]) < 1e-6
    assert narrow["size_front"]  # the smallest file is always on the size front
    assert narrow["meets_constraints"] and not wide["meets_constraints"]
    assert summary["best"]["model.head_width"] == 8  # the constraint decides

    # Other constraints pick again without training; none met means no best config.
    summary = tt.tune(config.load_config(run / "search.yaml", ["tune.constraints={params: 10}"]))
    assert summary["best"] is None and not (run / "best_config.yaml").exists()
    summary = tt.tune(config.load_config(run / "search.yaml", ["tune.constraints={}"]))
    best_f1 = max(narrow["val_main_f1"], wide["val_main_f1"])
    assert summary["best"]["val_main_f1"] == pytest.approx(best_f1)

    # Another space in the same folder is refused; best_config.yaml trains as it is.
    with pytest.raises(tt.RunExistsError, match="tune.space"):
        tt.tune(config.load_config(run / "search.yaml", ["tune.space={model.head_width: [4]}"]))
    best = config.load_config(run / "best_config.yaml")
    assert best.exp == "tune_head_width_best" and best.tune == config.TuneConfig()
    assert cli.main(["train", "--config", str(run / "best_config.yaml"), "train.epochs=1"]) == 0
    assert (tmp_path / "runs" / "tune_head_width_best" / "best.keras").is_file()


def test_trial_figures_follow_hyperband_budgets(tmp_path):
    """Hyperband runs one configuration at several budgets: only the largest counts."""
    cfg = tune_config(tmp_path, tmp_path, "tune.oracle=hyperband")
    table = pd.DataFrame({
        "trial": ["0", "1", "2"], "status": ["COMPLETED"] * 3, "model.head_width": [8, 8, 64],
        "epochs": [1, 3, 1], "val_main_f1": [0.2, 0.5, 0.3], "tflite_kb": [10.0, 10.0, 20.0],
        "latency_ms": [1.0, 1.0, 2.0], **{k: [np.nan] * 3 for k in (
            "params", "train_seconds", "best_epoch")}})
    done = tuning_results.analyse(cfg, table)
    assert sorted(done["trial"]) == ["1", "2"]
    assert done.set_index("trial")["size_front"].to_dict() == {"1": True, "2": False}


@pytest.mark.slow
def test_the_hypermodel_works_with_a_users_own_tuner(dataset, tmp_path):
    import keras_tuner as kt

    cfg = tune_config(tmp_path, dataset, "tune.epochs=1")
    tuner = kt.RandomSearch(tt.TwoHeadHyperModel(cfg), max_trials=1,
                            objective=kt.Objective("val_main_f1", "max"),
                            directory=str(tmp_path / "mine"), project_name="p")
    tuner.search(verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "COMPLETED"
    figures = {k: trial.metrics.get_last_value(k) for k in (
        "val_main_f1", "val_aux_f1", "params", "tflite_kb", "latency_ms", "train_seconds")}
    assert figures["tflite_kb"] > 0 and figures["latency_ms"] > 0 and figures["params"] > 0
    assert trial.hyperparameters.values["model.head_width"] in (8, 64)
    assert tuner.get_best_models(1)[0].output_names  # Keras Tuner's own checkpoint loads


def test_reports_say_so_when_every_trial_ties(tmp_path, capsys):
    """Trials read from their trial.json alone; a tie is named, not passed off as a win."""
    cfg = tune_config(tmp_path, tmp_path)
    for i, width in enumerate((8, 64)):
        folder = cfg.run_dir / f"trial_{i}"
        folder.mkdir(parents=True)
        metrics = {name: {"direction": "max", "observations": [{"value": [v], "step": 0}]}
                   for name, v in (("val_main_f1", 0.0), ("val_aux_f1", 0.5),
                                   ("tflite_kb", 10.0 * (i + 1)), ("latency_ms", 1.0),
                                   ("params", 100.0), ("train_seconds", 1.0),
                                   ("best_epoch", 1.0), ("parity_passed", 1.0))}
        (folder / "trial.json").write_text(json.dumps({
            "trial_id": str(i), "status": "COMPLETED", "metrics": {"metrics": metrics},
            "hyperparameters": {"values": {"model.head_width": width}}}))
        config.dump(config.with_values(cfg, {"model.head_width": width}),
                    folder / "config.yaml")
    space = tuning_space.search_space(cfg)
    summary = tuning_results.write_reports(cfg, space)
    said = capsys.readouterr().out
    assert "All 2 completed trials tie at val_main_f1=0.0000" in said
    assert summary["best"]["trial"] == "0"  # the smaller file among equals
