"""`train.distribution: data_parallel`: one model trained by a group of processes.

Keras 3 on JAX (`keras.distribution.DataParallel` over `jax.distributed`): every process
holds the whole model, reads its own shard of each global batch (`data.pipeline`'s
`shard`), and the gradients are averaged across processes each step, so the group
trains exactly as one process would with the global batch `train.batch_size`
(BatchNorm's batch statistics included: the batch is one global array). On CPUs the
collectives go through gloo; on GPUs and TPUs JAX picks NCCL or the TPU interconnect
itself and nothing in the config changes.

Process 0 is the writer: it alone locks and writes the run folder. The others read
(`--resume` loads `last.keras` on every process, so the run folder must be readable by
all of them: one machine, or a shared file system) and write nothing.

A group that cannot form is an error after `JOIN_TIMEOUT` seconds naming the
coordinator; a process that dies makes the others stop after `HEARTBEAT_TIMEOUT`
seconds (JAX's coordination service), never an endless hang; processes started with
different configs are refused at start-up (a hash of the resolved config).

Example (two processes on one machine, or set KERAS_DISTRIBUTION_* for a launcher):

    tf-twohead train --config two_head train.backend=jax train.distribution=data_parallel \\
        --num-processes 2 --process-id 0 --coordinator localhost:12355
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from tf_twohead.core.errors import ConfigError

# Seconds for every process to reach the coordinator (TF_TWOHEAD_JOIN_TIMEOUT overrides
# it: a cluster whose processes start minutes apart).
JOIN_TIMEOUT = 60
JOIN_TIMEOUT_ENV = "TF_TWOHEAD_JOIN_TIMEOUT"
HEARTBEAT_TIMEOUT = 20  # seconds without a peer's heartbeat before the group stops
# The variables Keras' own `keras.distribution.initialize` reads, so cluster launchers
# that already set them (and people who know Keras) need nothing new.
ENV = {"coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
       "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
       "process_id": "KERAS_DISTRIBUTION_PROCESS_ID"}

_group = None  # the Group this process joined


@dataclass(frozen=True)
class Group:
    """Where this process stands in its group."""

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None

    @property
    def writer(self) -> bool:
        return self.process_id == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """`(processes, index)` for `data.pipeline.datasets_for`, None for one process."""
        return (self.num_processes, self.process_id) if self.num_processes > 1 else None


def group_from(num_processes=None, process_id=None, coordinator=None) -> Group:
    """The group the command line (or else the environment) describes, checked.

    Raises:
        ConfigError: a missing or inconsistent value, named.
    """
    values = {"num_processes": num_processes, "process_id": process_id,
              "coordinator": coordinator}
    for key, env in ENV.items():
        if values[key] is None and os.environ.get(env):
            values[key] = os.environ[env]
    flag = {"num_processes": "--num-processes", "process_id": "--process-id",
            "coordinator": "--coordinator"}
    missing = [f"{flag[k]} (or {ENV[k]})" for k, v in values.items() if v in (None, "")]
    if missing:
        raise ConfigError("train.distribution=data_parallel needs " + ", ".join(missing)
                          + " (docs/distributed.md).")
    try:
        n, i = int(values["num_processes"]), int(values["process_id"])
    except ValueError:
        raise ConfigError(f"--num-processes and --process-id must be integers. Received: "
                          f"{values['num_processes']!r}, {values['process_id']!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--process-id must be in 0..{n - 1} for --num-processes {n}. "
                          f"Received: {i}")
    address = str(values["coordinator"]).split(",")[0]  # Keras' form: every job's address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator must be HOST:PORT (process 0's address). "
                          f"Received: {address!r}")
    return Group(n, i, address)


def config_digest(cfg) -> str:
    """A hash of the resolved config every process of a group must share (the run
    folder's own name included: two groups never write one folder)."""
    from tf_twohead.config import to_yaml, with_absolute_paths

    return hashlib.sha256(to_yaml(with_absolute_paths(cfg)).encode()).hexdigest()


def connect(group: Group) -> None:
    """Join the group through `jax.distributed`; call after
    `runtime.select_backend("jax")` and before Keras is imported or JAX computes.

    Raises:
        ConfigError: nobody answers at the coordinator within `JOIN_TIMEOUT` seconds.
    """
    global _group
    import jax

    timeout = os.environ.get(JOIN_TIMEOUT_ENV, str(JOIN_TIMEOUT))
    if not timeout.isdigit() or int(timeout) < 1:
        raise ConfigError(f"{JOIN_TIMEOUT_ENV} must be a number of seconds. Received: "
                          f"{timeout!r}")
    timeout = int(timeout)
    def refuse(reason: str) -> ConfigError:
        return ConfigError(
            f"process {group.process_id} of {group.num_processes} could not join the group "
            f"at {group.coordinator} within {timeout} s ({reason}). Start every process "
            "with the same --coordinator (process 0's host and a free port), process 0 "
            "first or within that time.")

    if group.process_id != 0:  # JAX aborts the process when nobody answers: ask first
        _wait_for(group.coordinator, timeout, refuse)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:  # process 0 waits here for the others (JAX's own message if they never come)
        jax.distributed.initialize(
            group.coordinator, group.num_processes, group.process_id,
            initialization_timeout=timeout, heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT)
    except Exception as e:  # XlaRuntimeError: DEADLINE_EXCEEDED, UNAVAILABLE, ...
        text = str(e).strip()
        raise refuse(text.splitlines()[0][:200] if text else type(e).__name__) from None
    _group = group


def _wait_for(address: str, timeout: float, refuse) -> None:
    """Return once something listens at `address`; `refuse(reason)` after `timeout` s."""
    import socket
    import time

    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise refuse(f"nobody answers: {e.strerror or e}") from None
            time.sleep(0.5)


def distribute(cfg) -> None:
    """Check that every process of the joined group runs `cfg`, then make data
    parallelism Keras' distribution in this process (each process feeds its own shard).

    Raises:
        ConfigError: the processes were started with different configs, or a global
            batch the processes cannot share equally.
    """
    import keras

    group = current()
    _check_same_config(cfg, group)
    if cfg.train.batch_size % group.num_processes:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is the global batch: it "
                          f"must divide by the {group.num_processes} processes.")
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        auto_shard_dataset=False))


def _check_same_config(cfg, group: Group) -> None:
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.frombuffer(bytes.fromhex(config_digest(cfg)), np.uint8).astype(np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    differ = [i for i in range(len(every)) if not np.array_equal(every[i], every[0])]
    if differ:
        raise ConfigError(
            f"processes {differ} of the group were started with a config other than process "
            "0's (its hash differs): start every process with the same config, overrides "
            "and data.root.")


def lost_group(error: BaseException) -> str | None:
    """The one-line message for an error that means the group broke (a peer died, or
    stopped answering), else None."""
    text = str(error)
    if _group is None or not any(mark in text for mark in (
            "Gloo", "heartbeat", "UNAVAILABLE", "DEADLINE_EXCEEDED", "Connection reset")):
        return None
    first = text.strip().splitlines()[0][:160] if text.strip() else type(error).__name__
    return (f"process {_group.process_id} of {_group.num_processes} lost its group: another "
            f"process stopped or stopped answering ({first}). The run folder keeps the last "
            "finished epoch: start every process again with --resume.")


def joined() -> bool:
    """Whether this process joined a group (`connect`)."""
    return _group is not None


def current() -> Group:
    """The group this process belongs to: a group of one when it joined none."""
    return _group or Group()
