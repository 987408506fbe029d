"""`tf-twohead train` and `tune`: the config and its split files checked before anything
heavy loads; then, for `train`, Keras' engine chosen (`train.backend`, before Keras is
imported) and a data-parallel group formed (`train.distribution`, before Keras or JAX
start); TensorFlow's threads set for the step's size; then the library."""

from __future__ import annotations

import os
import sys

from tf_twohead.cli import console
from tf_twohead.core.errors import ConfigError


def run_config(args, splits=("train", "val", "test")):
    """The config of a train or tune command, and its split files found, before TensorFlow."""
    from tf_twohead.config import load_config
    from tf_twohead.core.errors import DataError
    from tf_twohead.data.layouts import check_layouts
    from tf_twohead.data.splits import split_csv
    from tf_twohead.pretrained.warm_start import source_of

    cfg = load_config(args.config, args.overrides)
    missing = [str(split_csv(cfg.data.root, s)) for s in splits
               if not split_csv(cfg.data.root, s).is_file()]
    if missing:
        raise DataError(f"data.root={cfg.data.root}: no {', '.join(missing)}. Point "
                        f"data.root at a dataset folder with {', '.join(splits)} CSV files "
                        "(tf-twohead data fashion-mnist DIR writes a demo one).")
    check_layouts(cfg, [split_csv(cfg.data.root, s) for s in splits])
    if cfg.model.init_from and not getattr(args, "resume", False):
        source_of(cfg.model.init_from, cfg.run_dir)
    return cfg


def _step_pixels(cfg) -> int:
    """Input pixels of one training step: `runtime.set_threads` splits the threads of a
    small step between two ops at a time."""
    return cfg.train.batch_size * cfg.data.img_size ** 2


def train(args) -> int:
    from tf_twohead.core import runtime
    from tf_twohead.training import processes

    cfg = run_config(args)
    runtime.select_backend(cfg.train.backend)  # before Keras is imported
    parallel = cfg.train.distribution == "data_parallel"
    if parallel:  # before Keras or JAX start: the group forms first
        processes.connect(processes.group_from(args.num_processes, args.process_id,
                                               args.coordinator))
    elif args.num_processes or args.process_id is not None or args.coordinator:
        raise ConfigError("--num-processes, --process-id and --coordinator belong to "
                          "train.distribution=data_parallel (docs/distributed.md).")
    console.load_tensorflow()
    from tf_twohead.training import run as training

    if parallel:
        processes.distribute(cfg)
    runtime.set_threads(args.threads, step_pixels=_step_pixels(cfg))
    try:
        training.train(cfg, resume=args.resume, overwrite=args.overwrite)
    except Exception as e:
        message = processes.lost_group(e) if parallel else None
        if message is None:
            raise
        # JAX's own shutdown would now wait at a barrier for the dead peer and abort with
        # a stack trace: say what happened and leave at once.
        print(f"tf-twohead train: error: {message}", file=sys.stderr, flush=True)
        os._exit(2)
    return 0


def tune(args) -> int:
    chief = args.chief and args.worker is None  # the chief trains nothing and needs no data
    cfg = run_config(args, () if chief else ("train", "val"))
    if cfg.train.backend != "tensorflow" or cfg.train.distribution != "none":
        raise ConfigError("tune trains its trials on TensorFlow, one process each (spread a "
                          "search over machines with --chief/--worker): leave train.backend "
                          "and train.distribution at their defaults.")
    console.load_tensorflow()
    from tf_twohead.core import runtime
    from tf_twohead.tuning.search import tune as run_search

    runtime.set_threads(args.threads, step_pixels=_step_pixels(cfg))
    run_search(cfg, overwrite=args.overwrite, chief=args.chief, worker=args.worker)
    return 0
