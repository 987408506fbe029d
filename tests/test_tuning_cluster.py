"""Keras Tuner's distributed mode on localhost: a chief and two workers, one killed and
restarted mid-trial (its own file, so the suite's two workers can share the tuning tests)."""

import json

import pandas as pd
import pytest
from conftest import SHALLOW


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_on_localhost(dataset, tmp_path):
    """Keras Tuner's distributed mode, as on a cluster: one oracle, two trial runners, one
    shared folder. Worker 1 is killed mid-trial and restarted with the same ID: it gets
    its trial back and continues it from the last finished epoch."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = _free_port()
    args = [sys.executable, "-m", "tf_twohead.cli", "tune", "--config",
            "configs/tune_head_width.yaml", f"data.root={dataset}", "data.img_size=32", SHALLOW,
            f"output_dir={tmp_path / 'runs'}", "train.batch_size=8", "train.steps_per_epoch=10",
            "tune.oracle=grid", "tune.epochs=3", "tune.latency_images=3",
            "tune.space={model.head_width: [8, 16, 24]}", "tune.constraints={}",
            "--threads", "1"]
    run = tmp_path / "runs" / "tune_head_width"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def start(name, *extra):
        log = open(tmp_path / f"{name}.log", "w")
        return subprocess.Popen([*args, *extra], stdout=log, stderr=subprocess.STDOUT, env=env)

    chief = start("chief", "--chief", f"127.0.0.1:{port}")
    workers = [start(f"worker{i}", "--worker", str(i), "--chief", f"127.0.0.1:{port}")
               for i in (0, 1)]
    try:
        deadline, victim = time.time() + 300, None
        while victim is None and time.time() < deadline:
            time.sleep(0.2)
            try:
                ongoing = json.loads((run / "oracle.json").read_text())["ongoing_trials"]
            except (OSError, ValueError, KeyError):
                continue
            trial = ongoing.get("worker1")
            if trial and (run / f"trial_{trial}" / "train_state.json").is_file():
                victim = trial
        assert victim is not None, (tmp_path / "worker1.log").read_text()[-3000:]
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait()
        workers[1] = start("worker1-restarted", "--worker", "1", "--chief", f"127.0.0.1:{port}")
        for process in (*workers, chief):
            assert process.wait(timeout=600) == 0
    finally:
        for process in (*workers, chief):
            if process.poll() is None:
                process.kill()
    restarted = (tmp_path / "worker1-restarted.log").read_text()
    assert f"Resuming {run / f'trial_{victim}'}" in restarted
    trials = pd.read_csv(run / "trials.csv")
    assert sorted(trials["model.head_width"]) == [8, 16, 24]
    assert set(trials["status"]) == {"COMPLETED"}
    assert len(pd.read_csv(run / f"trial_{victim}" / "history.csv")) == 3
    assert "Best: trial" in (tmp_path / "chief.log").read_text()
