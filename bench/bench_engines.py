"""Training speed on Keras' two engines, and a data-parallel group against one process.

One run, interleaved rounds (each figure once per round, in turn; medians kept), each
figure in a fresh process (Keras' backend is chosen at import):
  - images/s of `model.fit` on a fixed in-memory batch of 64, two-head x0.5, 2 threads,
    at 64 and 256 px: Keras 3 on TensorFlow (as `tf-twohead train` sets it up) and on JAX;
  - JAX, 64 px, global batch 64: one process against two processes of one
    `keras.distribution.DataParallel` group (gloo on localhost, one thread each). On a
    2-core machine two processes cannot be faster: the figure shows the group's
    overhead (the gradient all-reduce, and BatchNorm's statistics over the global batch).

Usage: python bench/bench_engines.py [--rounds 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import cpu_flags, step_timer  # noqa: E402

HERE = Path(__file__).resolve()


def part(args) -> None:
    """One measurement, printed as JSON by process 0 (KERAS_BACKEND is set by the caller)."""
    if args.processes > 1:
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"localhost:{args.port}", args.processes, args.process_id)
    import keras
    import numpy as np

    from tf_twohead import config
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.pretrained import load as pretrained
    from tf_twohead.recipe import compiling as recipe

    set_threads(args.threads, step_pixels=64 * args.size ** 2)  # as `tf-twohead train`
    if args.processes > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(auto_shard_dataset=False))
    cfg = config.load_config("two_head", [f"data.img_size={args.size}", "model.width=0.5",
                                          "train.batch_size=64"])
    keras.utils.set_random_seed(0)
    model = recipe.compile_model(pretrained.build_model(cfg), cfg)
    local = 64 // args.processes
    rng = np.random.default_rng(args.process_id)
    x = rng.integers(0, 256, (local, args.size, args.size, 3)).astype("uint8")
    y = {h: rng.integers(0, 2, (local, 1)).astype("float32") for h in cfg.model.heads}
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = step_timer()
    model.fit(data, epochs=1, steps_per_epoch=args.steps + 3, callbacks=[timer], verbose=0)
    if args.process_id == 0:
        print(json.dumps({"img_s": 64 / statistics.median(timer.times[3:])}))


def measure(backend: str, size: int, steps: int, processes: int = 1) -> float | None:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = 2 if processes == 1 else 1
    runs = [subprocess.Popen(
        [sys.executable, str(HERE), "part", "--size", str(size), "--steps", str(steps),
         "--threads", str(threads), "--processes", str(processes), "--process-id", str(i),
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(processes)]
    outputs = [r.communicate(timeout=1800) for r in runs]
    if any(r.returncode for r in runs):
        print(f"  {backend} {size} px x{processes} failed: {outputs[0][1][-500:]}")
        return None
    return json.loads(outputs[0][0].strip().splitlines()[-1])["img_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "part"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "part":
        return part(args)
    print(f"tf-twohead engines: two-head ShuffleNetV2 x0.5, {os.cpu_count()} CPUs")
    print(f"CPU vector extensions: {cpu_flags()}")
    figures = {("tensorflow", 64, 1): [], ("jax", 64, 1): [], ("tensorflow", 256, 1): [],
               ("jax", 256, 1): [], ("jax", 64, 2): []}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds} ...", flush=True)
        for key, values in figures.items():
            value = measure(*key[:2], args.steps, key[2])
            if value:
                values.append(value)
    med = {k: statistics.median(v) if v else float("nan") for k, v in figures.items()}
    print("\n| training img/s, batch 64, median step | TensorFlow | JAX | JAX / TensorFlow |")
    print("|---|---|---|---|")
    for size in (64, 256):
        tf_, jax_ = med["tensorflow", size, 1], med["jax", size, 1]
        print(f"| {size} px, one process, 2 threads | {tf_:.0f} | {jax_:.0f} | "
              f"{jax_ / tf_:.2f}x |")
    one, two = med["jax", 64, 1], med["jax", 64, 2]
    print(f"\nJAX, 64 px, global batch 64: one process (2 threads) {one:.0f} img/s, two "
          f"processes of one DataParallel group (1 thread each) {two:.0f} img/s: "
          f"{two / one:.2f}x. Medians of {args.rounds} interleaved rounds.")


if __name__ == "__main__":
    main()
