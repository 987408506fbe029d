"""Hostile and careless runs: names that leave output_dir, --overwrite on a user's
folder, two writers in one folder, an open chief, broken model files, a full disk,
interruptions. Each must end in one clear line, with nothing deleted, mixed or lost."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

import keras
import pandas as pd
import pytest
from conftest import SHALLOW, Interrupt, tiny_config

from tf_twohead import cli, config, models
from tf_twohead.cli import console
from tf_twohead.core import run_folder
from tf_twohead.core.errors import ConfigError, RunExistsError
from tf_twohead.core.fileio import atomic_path
from tf_twohead.export import tflite as export
from tf_twohead.training import run as training
from tf_twohead.tuning.search import _distributed_env, tune


@pytest.mark.parametrize("exp", ["/tmp/x", "../x", "a/b", "..", "${oc.env:HOME}", "a b", "~x"])
def test_exp_is_one_plain_folder_name(exp):
    with pytest.raises(ConfigError, match="exp must be one plain folder name"):
        config.load_config(None, [f"exp={exp}"])


@pytest.mark.parametrize("override, key", [
    ("data.workers=-4", "data.workers must be at least 0"),
    ("data.rotation=1e309", "data.rotation must be a finite number"),
    ("train.learning_rate=nan", "train.learning_rate must be a finite number"),
    ("train.batch_size=100000000", "train.batch_size must be at most 65,536"),
    ("train.loss_weights.main=inf", "train.loss_weights.main must be a finite number"),
])
def test_numbers_are_finite_and_bounded_and_the_cli_names_the_key(override, key, capsys):
    assert cli.main(["train", "--config", "configs/two_head.yaml", override]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err and err.count("\n") == 1


def test_a_float_for_an_int_key_in_a_file_names_the_key(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  batch_size: 1e20\n")
    with pytest.raises(ConfigError, match="train.batch_size: Value '1e"):
        config.load_config(tmp_path / "c.yaml")


def test_tune_overwrite_never_deletes_a_folder_it_did_not_make(tmp_path):
    folder = tmp_path / "runs" / "mine"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("a user's file")
    cfg = config.load_config("configs/tune_head_width.yaml",
                             [f"output_dir={tmp_path / 'runs'}", "exp=mine"])
    with pytest.raises(RunExistsError, match="refusing to delete the contents of .*mine"):
        tune(cfg, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["precious.txt"]  # not even a lock


def test_overwrite_clears_its_own_folder_and_says_so(tmp_path, capsys):
    folder = run_folder.claim_run_dir(tmp_path / "search")
    (folder / "trial_00").mkdir()
    (folder / "trial_00" / "best.keras").write_bytes(b"x" * 1000)
    with run_folder.lock_run_dir(folder, "search"):
        run_folder.clear_run_dir(folder)
    assert {p.name for p in folder.iterdir()} <= {run_folder.MARKER, run_folder.LOCK}
    assert "removing 1 files (0.0 MB) from" in capsys.readouterr().out


def test_a_second_writer_fails_at_once_naming_the_first(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tf_twohead.core import run_folder\n"
         f"with run_folder.lock_run_dir({str(cfg.run_dir)!r}, 'run'):\n"
         "    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunExistsError, match=rf"being written by another run \(pid "
                                                 rf"{holder.pid} on "):
            training.train(cfg, verbose=0)
        assert not (cfg.run_dir / "config.yaml").exists()  # nothing of the second run
    finally:
        holder.kill()
        holder.wait()


def test_the_chief_binds_the_loopback_unless_told_otherwise():
    with _distributed_env("8765", None):
        assert os.environ["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
    with _distributed_env("0.0.0.0:8765", None):
        assert os.environ["KERASTUNER_ORACLE_IP"] == "0.0.0.0"


def test_sigterm_is_an_interrupt_that_removes_temporary_files(tmp_path, capsys):
    target = tmp_path / "best.tflite"

    def command(args):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a model")
            assert not tmp.name.endswith(".tflite")  # never a model's name while partial
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        return 0

    assert console.run("convert", command, None) == 130
    assert list(tmp_path.iterdir()) == []
    assert "Interrupted. Nothing was written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored afterwards


@pytest.mark.parametrize("command, advice", [("train", "--resume"), ("evaluate", "run the same"),
                                             ("convert", "Nothing was written")])
def test_the_interrupt_message_fits_the_command(command, advice, capsys):
    def stop(args):
        raise KeyboardInterrupt

    assert console.run(command, stop, None) == 130
    err = capsys.readouterr().err
    assert advice in err and (command == "train") == ("--resume" in err)


@pytest.mark.slow
def test_an_interrupted_convert_leaves_no_tflite(dataset, tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, dataset)
    cfg.run_dir.mkdir(parents=True)
    config.dump(cfg, cfg.run_dir / "config.yaml")
    models.build("two_head", 32, head_width=16).save(cfg.run_dir / "best.keras")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "check_candidate", interrupted)
    # A temporary folder of this test's own: the suite's other worker converts too.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(KeyboardInterrupt):
        export.to_tflite(cfg.run_dir, "none", parity_images=8, progress=False)
    assert not list(cfg.run_dir.glob("*.tflite")) and not list(cfg.run_dir.glob(".*"))
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("tf_twohead_convert_")]


@pytest.mark.slow
def test_history_holds_one_row_per_finished_epoch_after_a_resume(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "train.epochs=3")
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, verbose=0, callbacks=[Interrupt(after=1)])
    history = cfg.run_dir / "history.csv"
    rows = history.read_text().splitlines()
    # An epoch whose row was written but whose checkpoint was not (a full disk, a kill).
    extra = "2" + rows[-1][rows[-1].index(","):]
    history.write_text("\n".join([*rows, extra]) + "\n")
    training.train(cfg, resume=True, verbose=0)
    assert pd.read_csv(history)["epoch"].tolist() == [1, 2, 3]


@pytest.mark.slow
def test_a_full_disk_during_an_epoch_is_one_line(dataset, tmp_path, monkeypatch, capsys):
    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    cfg = tiny_config(tmp_path, dataset)
    code = cli.main(["train", "--config", "configs/two_head.yaml", f"data.root={dataset}",
                     f"output_dir={cfg.output_dir}", "data.img_size=32", "model.head_width=16",
                     SHALLOW, "train.epochs=1", "train.batch_size=8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("tf-twohead train: error: no space left")
    assert "--resume" in err[-1] and not any("Traceback" in line for line in err)


def test_an_unwritable_output_folder_is_one_line(dataset, tmp_path, capsys):
    (tmp_path / "a file").write_text("not a folder")
    assert cli.main(["train", "--config", "configs/two_head.yaml", f"data.root={dataset}",
                     f"output_dir={tmp_path / 'a file'}", "data.img_size=32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tf-twohead train: error:") and "a file" in err
    assert "Traceback" not in err
    assert "Choose a folder you can write" in console.os_error(
        "train", PermissionError(errno.EACCES, "Permission denied", "/ro/run"))


def test_a_keras_file_naming_os_system_is_refused_in_one_line(tmp_path, capsys):
    good = tmp_path / "good.keras"
    models.build("two_head", 32, head_width=8).save(good)
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                cfg = json.loads(data)
                cfg["config"]["layers"][1].update(module="os", class_name="system",
                                                  registered_name="system")
                data = json.dumps(cfg).encode()
            dst.writestr(item, data)
    image = tmp_path / "x.png"
    keras.utils.save_img(image, keras.ops.zeros((32, 32, 3)))
    assert cli.main(["predict", str(evil), str(image)]) == 2
    err = capsys.readouterr().err
    assert "evil.keras: not a model Keras can load safely" in err and "Traceback" not in err


def test_broken_tflite_metadata_is_one_line(tmp_path, capsys):
    fake = tmp_path / "m.tflite"
    fake.write_bytes(b"TFL3 not really a flatbuffer")
    with zipfile.ZipFile(fake, "a") as archive:
        archive.writestr("tf_twohead_metadata.json", "{not json")
    assert cli.main(["predict", str(fake), str(fake)]) == 2
    err = capsys.readouterr().err
    assert "m.tflite: its embedded metadata" in err and "not readable JSON" in err
    assert "Traceback" not in err
