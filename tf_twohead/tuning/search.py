"""`tune(cfg)`: run (or continue) a whole search and write its reports.

The search writes into `<output_dir>/<exp>/`: Keras Tuner's project folder (a run
folder per trial) plus `search.yaml`, `trials.csv`, `trials.md`, `pareto.csv`,
`pareto.png` and `best_config.yaml` (`tuning.results`). It continues an interrupted
search, and runs as Keras Tuner's chief or as a worker for searches over several
machines sharing that folder (docs/searches.md).
"""

from __future__ import annotations

import contextlib
import os

from tf_twohead.config import Config, dump
from tf_twohead.core.api import public
from tf_twohead.core.run_folder import SEARCH_CONFIG, check_ours, clear_run_dir, lock_run_dir
from tf_twohead.core.runtime import warn_if_onednn_off
from tf_twohead.training.resume import check_same_settings
from tf_twohead.tuning.hypermodel import TwoHeadHyperModel
from tf_twohead.tuning.results import write_reports
from tf_twohead.tuning.tuners import make_tuner


def check_search_dir(cfg: Config, overwrite: bool, worker: bool = False) -> None:
    """Refuse to continue a search folder with another search's settings.

    `tune.max_trials` may grow (more trials), `tune.constraints` may change (the best
    trial is picked again, without training) and the data may move (`training.resume.MAY_CHANGE`);
    anything else changes what the trials mean.
    """
    if overwrite:
        return
    check_same_settings(
        cfg, ("data", "model", "train", "tune"), SEARCH_CONFIG, action="continue the search in",
        advice=f"Continue it with the same config, start again with --overwrite"
               f"{' on the chief' if worker else ''}, or choose another exp=NAME.")


@contextlib.contextmanager
def _distributed_env(chief: str | None, worker: str | None):
    """Keras Tuner's distributed mode is configured by environment variables only."""
    if chief is None:
        yield None
        return
    host, _, port = chief.rpartition(":")
    if worker is None:  # a bare port binds the loopback; all interfaces must be asked for
        tuner_id, host = "chief", host or "127.0.0.1"
    else:
        if not host:
            raise ValueError(f"A worker needs --chief HOST:PORT. Received: {chief!r}")
        if "chief" in worker:
            raise ValueError(f"Worker IDs must not contain 'chief' (Keras Tuner would take "
                             f"the worker for the chief). Received: {worker!r}")
        tuner_id = f"worker{worker}" if worker.isdigit() else worker
    if not port.isdigit():
        raise ValueError(f"--chief needs a port number (PORT or HOST:PORT). Received: {chief!r}")
    env = {"KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": port,
           "KERASTUNER_TUNER_ID": tuner_id}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield tuner_id
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@public
def tune(cfg: Config, overwrite: bool = False, chief: str | None = None,
         worker: str | None = None, verbose: int | str = 2) -> dict:
    """Run (or continue) the search `cfg.tune` describes, and write its reports.

    Args:
        cfg: `Config` with a `tune` section.
        overwrite: bool. Empty `<output_dir>/<exp>/` and start again (never on a worker);
            only a folder tf-twohead created (`core.run_folder.clear_run_dir`).
        chief: str or None. "PORT" (bound on 127.0.0.1) or "HOST:PORT" (e.g.
            "0.0.0.0:8000" for every interface) to run Keras Tuner's oracle for workers
            (this process trains nothing), or the chief's "HOST:PORT" for a worker. The
            link is unauthenticated gRPC: keep it on a private network.
        worker: str or None. This worker's ID; a restarted worker with the same ID gets
            its unfinished trial back and continues it from its last epoch.
        verbose: Keras' fit verbosity inside trials.

    Returns:
        `{"run_dir", "trials", "best"}` (the summary `tuning.results.write_reports`
        returns); for a worker, `{"run_dir", "worker"}` once the search is over.

    Example:

    >>> cfg = tt.load_config("configs/tune_head_width.yaml", ["data.root=demo_data/fm6k"])
    >>> summary = tt.tune(cfg)
    >>> summary["best"]["config"]
    'saved_models/tune_head_width/best_config.yaml'
    """
    if worker is not None and overwrite:
        raise ValueError("--overwrite is never used on a worker: it would delete the shared "
                         "search folder under the other workers. Use it on the chief.")
    if worker is not None and chief is None:
        raise ValueError("A worker needs --chief HOST:PORT.")
    warn_if_onednn_off()
    hypermodel = TwoHeadHyperModel(cfg)  # checks the space: fails before anything runs
    # The chief (or the one process of a local search) owns the folder; workers share it
    # and lock only the trial folder they train.
    owner = worker is None
    if overwrite:
        check_ours(cfg.run_dir)  # before even a lock file is written into someone's folder
    with lock_run_dir(cfg.run_dir, "search") if owner else contextlib.nullcontext():
        if overwrite:
            clear_run_dir(cfg.run_dir)  # ours only, and never Keras Tuner's rmtree
        check_search_dir(cfg, overwrite, worker is not None)
        if chief is None or worker is not None:
            hypermodel.prepare()  # the chief trains nothing and needs no data
        with _distributed_env(chief, worker) as role:
            tuner = make_tuner(hypermodel)
            if owner:
                dump(cfg, cfg.run_dir / SEARCH_CONFIG)
                tuner.save()  # so a search cut short in its first trial still reloads
            if role == "chief":
                print(f"[tune] chief: serving the oracle on "
                      f"{os.environ['KERASTUNER_ORACLE_IP']}:"
                      f"{os.environ['KERASTUNER_ORACLE_PORT']} (no authentication: keep it "
                      f"on a private network); start workers with --worker ID --chief "
                      f"HOST:{os.environ['KERASTUNER_ORACLE_PORT']}")
            tuner.search(verbose=verbose)
        if not owner:
            print(f"[tune] worker {role}: no trials left; the chief writes the reports.")
            return {"run_dir": str(cfg.run_dir), "worker": role}
        return write_reports(cfg, hypermodel.space)
