"""Keras 3 on JAX (`train.backend=jax`) and data-parallel training over processes
(`train.distribution=data_parallel`), each process a `tf-twohead train` of its own on
this machine (one CPU device each, gloo collectives). The test process itself runs
TensorFlow, as a user's `convert` does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHALLOW, write_dataset

from tf_twohead.core.errors import ConfigError
from tf_twohead.training.processes import Group, group_from

# No augmentation: each process augments its own rows, so with it a group's batch differs
# from one process's (still a fair sample, but not the same numbers).
TINY = ["data.img_size=32", SHALLOW, "train.batch_size=16", "data.rotation=0",
        "data.hflip=false", "train.backend=jax"]
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tf_twohead", "train", "--config",
                             "two_head", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env or QUIET)


def group(n: int, args: list[str], env=None) -> list[subprocess.Popen]:
    """`n` processes of one data-parallel run; process 0 first."""
    port = free_port()
    overrides = [a for a in args if "=" in a]  # overrides, then options (either parses)
    options = [a for a in args if "=" not in a]
    return [cli(*overrides, "train.distribution=data_parallel", *options, "--threads", "1",
                "--num-processes", str(n), "--process-id", str(i),
                "--coordinator", f"localhost:{port}", env=env) for i in range(n)]


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    outputs = []
    for p in processes:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]
        outputs.append(out)
    return outputs


def weights(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.models.load_model(path).weights]


def last_epoch(output_dir: Path) -> dict[str, float]:
    header, *rows = (output_dir / "two_head" / "history.csv").read_text().splitlines()
    return dict(zip(header.split(","), map(float, rows[-1].split(","))))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dp") / "ds", per_class=(16, 16, 16), size=40)


def test_group_settings_are_checked_before_anything_starts(monkeypatch):
    for env in ("KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID",
                "KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigError, match="--process-id .*--coordinator"):
        group_from(2, None, None)
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        group_from(2, 2, "localhost:1234")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        group_from(2, 0, "localhost")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "4")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "3")
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:29500,10.0.0.2:29500")
    assert group_from() == Group(4, 3, "10.0.0.1:29500")  # Keras' own variables
    assert not group_from().writer and group_from(process_id=0).writer


KINDS_ON_JAX = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras, numpy as np
from tf_twohead import config
from tf_twohead.pretrained import load as pretrained
from tf_twohead.recipe import compiling as recipe
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
for preset in ("two_head", "three_class", "combined"):
    cfg = config.load_config(preset, ["data.img_size=32", "model.stage_repeats=[1,1,1]",
                                    "model.head_width=16"])
    model = recipe.compile_model(pretrained.build_model(cfg), cfg, total_steps=10)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    y = {name: np.zeros((8,) + tuple(out.shape[1:]), "float32")
         for name, out in zip(model.output_names, model.outputs)}
    before = [np.asarray(w) for w in model.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a step: every custom piece on JAX
    moved = sum(not np.array_equal(a, np.asarray(b))
                for a, b in zip(before, model.trainable_weights))
    kind = cfg.model.kind
    path = os.path.join(sys.argv[1], kind + ".keras")
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0)[model.output_names[0]],
                               model.predict(x, verbose=0)[model.output_names[0]], atol=1e-6)
    print(kind, moved, len(before))
"""


@pytest.mark.slow
def test_every_model_kind_trains_saves_and_reloads_on_jax(tmp_path):
    done = subprocess.run([sys.executable, "-c", KINDS_ON_JAX, str(tmp_path)], env=QUIET,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.split("\n") if line)
    assert set(lines) == {"two_head", "softmax", "combined"}, done.stdout
    for kind, counts in lines.items():
        moved, total = map(int, counts.split())
        assert moved > total // 2, (kind, moved, total)  # the optimizer stepped


@pytest.mark.slow
def test_jax_trained_model_resumes_and_converts_under_tensorflow_with_parity(data, tmp_path):
    from tf_twohead.export import tflite as export

    args = [f"data.root={data}", f"output_dir={tmp_path}", *TINY, "train.epochs=1"]
    out = finish([cli(*args)])[0]
    assert "Keras on JAX, 1 process(es)" in out
    out = finish([cli(*args[:-1], "train.epochs=2", "--resume")])[0]
    assert "Resuming" in out and "epoch 2/2" in out
    result = export.to_tflite(tmp_path / "two_head", "none", progress=False)
    assert result["parity"]["passed"]  # the JAX-trained file, loaded by TensorFlow


@pytest.mark.slow
def test_two_processes_step_like_one_process_with_the_global_batch(data, tmp_path):
    """One step of 16 images: split 8 + 8 over two processes, or 16 in one, gives the same
    weights. Adam's epsilon is raised for the comparison: the betas of a BatchNorm followed
    by conv + BatchNorm get a zero gradient up to rounding, and Adam's first step turns
    rounding noise of any size into +-learning_rate."""
    args = [f"data.root={data}", *TINY, "train.epochs=1", "train.steps_per_epoch=1",
            "train.adam_epsilon=0.001"]
    one, two = tmp_path / "one", tmp_path / "two"
    finish([cli(*args, f"output_dir={one}", "--threads", "1")])
    outputs = finish(group(2, [*args, f"output_dir={two}"]))
    assert "2 process(es)" in outputs[0] and "epoch 1/1" in outputs[0]
    assert "epoch" not in outputs[1]  # process 0 speaks for the group
    assert sorted(p.name for p in two.iterdir()) == ["cache", "two_head"]  # writes alone
    for a, b in zip(weights(one / "two_head" / "last.keras"),
                    weights(two / "two_head" / "last.keras")):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # and the validation after that step (the whole split, read by both processes)
    assert last_epoch(two)["val_loss"] == pytest.approx(last_epoch(one)["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_a_dead_process_stops_the_other_and_the_group_resumes(data, tmp_path):
    args = [f"data.root={data}", f"output_dir={tmp_path}", *TINY]
    processes = group(2, [*args, "train.epochs=500"])
    run = tmp_path / "two_head"
    deadline = time.monotonic() + 180
    while not (run / "train_state.json").exists():  # an epoch done, together
        assert time.monotonic() < deadline and processes[0].poll() is None
        time.sleep(0.5)
    processes[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, _ = processes[0].communicate(timeout=90)
    assert time.monotonic() - killed < 60
    assert processes[0].returncode != 0
    assert "lost its group" in out or "another task died" in out, out[-2000:]
    assert "Traceback" not in out

    done = json.loads((run / "train_state.json").read_text())["epoch"]
    outputs = finish(group(2, [*args, f"train.epochs={done + 1}", "--resume"]))
    assert f"Resuming {run} after epoch {done}" in outputs[0]
    assert f"epoch {done + 1}/{done + 1}" in outputs[0]
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == done + 2  # the header and one row per finished epoch


@pytest.mark.slow
def test_nobody_at_the_coordinator_and_other_configs_are_refused(data, tmp_path):
    env = {**QUIET, "TF_TWOHEAD_JOIN_TIMEOUT": "3"}
    args = [f"data.root={data}", f"output_dir={tmp_path}", *TINY,
            "train.distribution=data_parallel"]
    options = ["--num-processes", "2", "--threads", "1"]
    alone = cli(*args, *options, "--process-id", "1", "--coordinator",
                f"localhost:{free_port()}", env=env)
    out, _ = alone.communicate(timeout=120)
    assert alone.returncode == 2 and "could not join the group at localhost:" in out
    assert "within 3 s" in out and "Traceback" not in out
    port = free_port()
    mixed = [cli(*args, f"train.epochs={epochs}", *options, "--process-id", str(i),
                 "--coordinator", f"localhost:{port}") for i, epochs in enumerate((1, 2))]
    for p in mixed:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 2 and "config other than process 0's" in out, out[-2000:]
