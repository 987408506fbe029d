"""The first hour of a new user, through the CLI: quiet and fast answers, presets by
name, a training run that explains itself, readable results, predictions with
decisions, and nothing piling up on disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHALLOW, write_dataset
from pth_writer import contiguous, write_pth

from tf_twohead import cli, models
from tf_twohead.core.version import __version__
from tf_twohead.pretrained import torchvision as weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.img_size=32", "model.head_width=16", SHALLOW, "train.epochs=2",
        "train.batch_size=16"]


def tf_twohead(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tf_twohead", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def test_version_help_and_errors_answer_before_tensorflow_loads():
    done = tf_twohead("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"tf-twohead {__version__}"
    helped = tf_twohead("train", "--help")
    assert "(default: None)" in helped.stdout or "default:" in helped.stdout
    missing = tf_twohead("train", "--config", "nosuch.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "tf-twohead train: error: Config file not found: nosuch.yaml. Give a YAML file or a "
        "preset name: combined, combined_baseline, combined_control, three_class, "
        "tune_head_width, two_head (tf-twohead config show NAME)."]
    bad_split = tf_twohead("evaluate", "run", "--split", "valid")
    assert bad_split.returncode == 2 and "invalid choice: 'valid'" in bad_split.stderr
    # None of them loaded TensorFlow (bench/cli_startup.py measures the time this saves).
    code = ("import sys; from tf_twohead.cli import main; main(sys.argv[1:]); "
            "print('loaded' if 'tensorflow' in sys.modules else 'not loaded')")
    for args in (["train", "--config", "nosuch.yaml"], ["evaluate", "/no/such/run"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, cwd=ROOT)
        assert done.stdout.strip() == "not loaded", args


def test_presets_resolve_by_name_and_can_be_shown_and_copied(tmp_path, capsys):
    assert cli.main(["config", "show", "two_head"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# Two-headed ShuffleNetV2") and "heads:" in shown
    assert cli.main(["config", "copy", "two_head", str(tmp_path / "mine.yaml")]) == 0
    assert (tmp_path / "mine.yaml").read_text() == shown
    assert cli.main(["config", "copy", "two_head", str(tmp_path / "mine.yaml")]) == 2


@pytest.mark.slow
def test_a_run_explains_itself_and_keeps_best_keras_small(tmp_path, capsys):
    data = write_dataset(tmp_path / "ds", per_class=(8, 8, 8))
    runs = tmp_path / "runs"
    assert cli.main(["train", "--config", "two_head", f"data.root={data}",
                     f"output_dir={runs}", *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Decoding train (") and out[0].endswith(": 24 images, 0 undecodable")
    out = out[next(i for i, line in enumerate(out) if line.startswith("Run ")):]
    assert out[0].startswith(f"Run {runs / 'two_head'}: two_head, shufflenet_v2 x0.5, 32 px")
    assert "main+" in out[2] and "aux+" in out[2]
    assert [line.split()[0] for line in out[3:6]] == ["train", "val", "test"]
    epochs = [line for line in out if line.startswith("epoch ")]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2  loss ")
    assert "val F1 main" in epochs[0] and epochs[0].endswith("* best.keras")
    assert all(len(line) < 120 for line in epochs)
    assert out[-2].startswith("Done in ") and out[-1].startswith("Next: tf-twohead evaluate")
    run = runs / "two_head"
    import keras

    best = keras.saving.load_model(run / "best.keras")
    assert getattr(best, "optimizer", None) is None  # inference-ready
    assert keras.saving.load_model(run / "last.keras").optimizer is not None  # for --resume
    assert (run / "best.keras").stat().st_size < 0.8 * (run / "last.keras").stat().st_size
    config = (run / "config.yaml").read_text()
    assert f"root: {data.resolve()}" in config  # evaluate works from any folder

    # evaluate: what, where and how many; its files; another dataset gets its own files.
    assert cli.main(["evaluate", str(run), "--latency-images", "2",
                     "--target-precision", "0.999"]) == 0
    said = capsys.readouterr().out
    assert f"on the test split of {data.resolve()}: 24 images" in said
    assert "Wrote in" in said and "errors_main.png" in said and "pr_curves.png" in said
    for name in ("metrics.json", "report.md", "errors_main.png", "errors_aux.png",
                 "confusion.png"):
        assert (run / name).stat().st_size > 0, name
    other = write_dataset(tmp_path / "other", per_class=(4, 4, 4))
    before = (run / "metrics.json").read_bytes()
    assert cli.main(["evaluate", str(run), "--data", str(other), "--latency-images", "2"]) == 0
    assert (run / "metrics.json").read_bytes() == before
    assert json.loads((run / "metrics@other.json").read_text())["images"] == 12

    # predict: folders, globs and the run folder itself; decisions with 3 decimals.
    capsys.readouterr()
    assert cli.main(["predict", str(run), str(data / "screens"),
                     str(data / "documents" / "test 1*.jpg")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 * 3 + 1
    assert all(" main: " in line and " aux: " in line for line in lines)
    first = lines[0].split("main: ")[1].split()
    assert first[0] in ("yes", "no") and len(first[1].split(".")[1]) == 3


@pytest.mark.slow
def test_tflite_predictions_run_without_tensorflow(tmp_path):
    from tf_twohead.export import tflite as export

    data = write_dataset(tmp_path / "ds", per_class=(4, 4, 4), size=32)
    run = tmp_path / "run"
    run.mkdir()
    from tf_twohead import config

    config.dump(config.load_config("two_head", [f"data.root={data}", "data.img_size=32"]),
                run / "config.yaml")
    models.build("two_head", 32, head_width=8).save(run / "best.keras")
    tflite = export.to_tflite(run, "none", parity_images=12, progress=False)["path"]
    assert Path(tflite) == run / "exports" / "best.tflite"
    code = ("import sys, runpy; sys.argv = ['tf-twohead', 'predict', sys.argv[1], sys.argv[2]];"
            "from tf_twohead.cli import main; code = main();"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, tflite, str(data / "screens")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "TF False False"
    assert "XNNPACK" not in done.stderr and "cuInit" not in done.stderr


def test_weights_import_reads_the_width_from_the_file(tmp_path, capsys):
    source = models.shufflenet_v2(1.0)
    state = {}
    for layer in source.layers:
        for w in layer.weights:
            value = np.asarray(w.numpy())
            if value.ndim == 4:
                depthwise = "DepthwiseConv2D" in type(layer).__name__
                value = np.transpose(value, (2, 3, 0, 1) if depthwise else (3, 2, 0, 1))
            elif value.ndim == 2:
                value = value.T
            key = weights.torch_key(layer.name, w.name)
            state[key] = contiguous(str(len(state)), value)
    write_pth(tmp_path / "x1.pth", state)
    assert cli.main(["weights", "import-torchvision", str(tmp_path / "x1.pth")]) == 0
    said = capsys.readouterr().out
    assert "ShuffleNetV2 x1.0 (read from the file)" in said
    loaded = models.shufflenet_v2(1.0)
    loaded.load_weights(tmp_path / "x1.weights.h5")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), source(x), atol=1e-4)  # same weights, same logits


@pytest.mark.slow
def test_data_refuses_a_non_empty_folder_and_clean_lists_then_removes(tmp_path, capsys):
    from test_sources import fake_fashion_mnist

    out = tmp_path / "fm"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    idx = fake_fashion_mnist(tmp_path / "idx", 60, 20)
    args = ["data", "fashion-mnist", str(out), "--source", str(idx), "--size", "32",
            "--train", "30", "--val", "12", "--test", "12"]
    assert cli.main(args) == 2
    assert "is not empty" in capsys.readouterr().err
    assert cli.main([*args, "--overwrite"]) == 0

    runs = tmp_path / "runs"
    assert cli.main(["train", "--config", "two_head", f"data.root={out}",
                     f"output_dir={runs}", *TINY]) == 0
    (out / "train.csv").write_text((out / "train.csv").read_text().splitlines()[0] + "\n")
    capsys.readouterr()
    assert cli.main(["clean", "--caches", "--output-dir", str(runs), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "Would remove 1 item(s)" in listed and "its CSV or images changed" in listed
    assert len(list((runs / "cache").iterdir())) == 3
    assert cli.main(["clean", str(runs / "two_head"), "--caches",
                     "--output-dir", str(runs)]) == 0
    assert not (runs / "two_head").exists() and len(list((runs / "cache").iterdir())) == 2
    assert cli.main(["clean", str(tmp_path / "idx")]) == 2  # not a run: never removed
    assert (tmp_path / "idx").is_dir()
    shutil.rmtree(runs)
