"""End to end through the CLI on tiny generated data: data, train, evaluate, compare, predict."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHALLOW
from test_sources import fake_fashion_mnist

from tf_twohead.cli import main

TINY = ["data.img_size=32", "model.head_width=16", SHALLOW, "train.epochs=1",
        "train.batch_size=16",
        "train.steps_per_epoch=2"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TensorFlow is already running")  # in-process CLI calls
def test_cli_end_to_end(tmp_path, capsys):
    data, runs = tmp_path / "ds", tmp_path / "runs"
    assert main(["data", "fashion-mnist", str(data), "--source",
                 str(fake_fashion_mnist(tmp_path / "idx", 120, 40)), "--size", "32",
                 "--train", "80", "--val", "30", "--test", "30"]) == 0
    for cfg, exp in (("configs/two_head.yaml", "two"), ("configs/three_class.yaml", "three")):
        assert main(["train", "--config", cfg, f"data.root={data}", f"output_dir={runs}",
                     f"exp={exp}", *TINY]) == 0
        assert main(["evaluate", str(runs / exp), "--threads", "1", "--latency-images", "5",
                     "--target-precision", "0.9"]) == 0
        metrics = json.loads((runs / exp / "metrics.json").read_text())
        assert set(metrics["heads"]) == {"main", "aux"}
        assert set(metrics["heads"]["main"]) >= {"precision", "recall", "f1", "accuracy",
                                                 "auc", "threshold"}
        assert metrics["latency_ms"] > 0 and metrics["model_bytes"] > 0
        assert metrics["at_target_precision"]["target"] == 0.9
        for png in ("pr_curves.png", "confusion.png", "curves.png"):
            assert (runs / exp / png).stat().st_size > 0
    capsys.readouterr()

    classes = json.loads((runs / "three" / "metrics.json").read_text())["classes"]
    assert 0 <= classes["accuracy"] <= 1 and len(classes["per_class"]) == 3
    assert (runs / "three" / "confusion_classes.png").stat().st_size > 0

    assert main(["compare", str(runs / "two"), str(runs / "three"),
                 "--plot", str(tmp_path / "runs.png")]) == 0
    table = capsys.readouterr().out
    assert "two (two_head, keras)" in table and "three (softmax, keras)" in table
    assert "main precision" in table and "latency ms" in table
    assert "accuracy" in table  # the softmax run's class accuracy
    assert (tmp_path / "runs.png").stat().st_size > 0

    image = next((data / "screens").glob("*.jpg"))
    shutil.copy(image, tmp_path / "with space.jpg")
    assert main(["predict", str(runs / "two"), str(image), str(tmp_path / "with space.jpg"),
                 "--json", "--save", str(tmp_path / "out.csv")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [sorted(x) for x in lines] == [["decisions", "path", "probabilities"]] * 2
    main_p = [x["probabilities"]["main"] for x in lines]
    assert 0 <= main_p[0] <= 1 and main_p[0] == main_p[1]
    assert lines[0]["decisions"]["main"] == (main_p[0] >= 0.5)
    saved = (tmp_path / "out.csv").read_text().splitlines()
    assert saved[0] == "path,main_decision,main_probability,aux_decision,aux_probability"
    assert len(saved) == 3


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["train", "--config", "configs/two_head.yaml", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "Traceback" not in err
    assert main(["train", "--config", "configs/two_head.yaml", f"data.root={tmp_path}",
                 f"output_dir={tmp_path / 'runs'}"]) == 2
    assert "train.csv" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "No model at" in capsys.readouterr().err


def test_overrides_may_follow_options(tmp_path, capsys):
    # argparse alone stops a command's overrides at its first option
    assert main(["train", "--config", "two_head", "--threads", "1", f"data.root={tmp_path}",
                 "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert f"data.root={tmp_path}" in err and "train.csv" in err  # read as an override
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", "two_head", "--threads", "1", "--no-such-flag"])
    assert stop.value.code == 2 and "--no-such-flag" in capsys.readouterr().err


def test_console_script_is_installed():
    beside = Path(sys.executable).parent / "tf-twohead"  # a venv that is not activated
    script = str(beside) if beside.exists() else shutil.which("tf-twohead")
    assert script, "the tf-twohead console script is not installed"
    done = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("data", "train", "evaluate", "compare", "predict"):
        assert command in done.stdout
