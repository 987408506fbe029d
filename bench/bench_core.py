"""Core benchmark: latency, training throughput and input-pipeline throughput (x0.5 @ 256).

Prints, for this CPU:
  1. per-image latency, file -> probabilities (decode, EXIF, RGB, resize, model,
     activation; one image at a time, 1 thread), of the two-head and the three-output
     model, interleaved in one process so their ratio is fair on a noisy machine;
  2. training throughput (images/s, batch 64, 2 threads) on a fixed in-memory batch
     and through the real pipeline (cache -> shuffle -> gather -> rotate -> prefetch);
  3. input-pipeline-only throughput and its ratio to the training consumption rate;
  4. the one-off cache build rate (decode of the JPEG files with EXIF + resize).

Targets (issue 2): latency ratio <= 1.05; pipeline >= 3x training; training >= 75 img/s.
Each part runs in its own process because TensorFlow's thread count is fixed at start.

Usage: python bench/bench_core.py [--size 256] [--width 0.5] [--images 384] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timing import median_ms  # noqa: E402 - bench/ is the script's folder


def make_jpegs(root: Path, n: int, seed: int = 0) -> None:
    """Phone-like inputs: 640x480 JPEGs of smooth random content, 3 classes, a CSV per split."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
        rel = f"class {i % 3}/img_{i}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel, quality=90)
        rows.append(f"{rel},{i % 3}")
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")


def part_latency(args, root: Path) -> dict:
    from tf_twohead import models
    from tf_twohead.evaluation import measure_latency
    from tf_twohead.inference import Predictor, set_threads

    set_threads(1)
    files = sorted(root.glob("class */*.jpg"))[: args.latency_images]
    predictors = {}
    for kind in ("two_head", "softmax"):
        path = root / f"{kind}.keras"
        models.build(kind, args.size, args.width).save(path)
        predictors[kind] = Predictor(path)
    rounds = {kind: [] for kind in predictors}
    for _ in range(args.rounds):  # interleaved: both models see the same machine state
        for kind, predictor in predictors.items():
            rounds[kind].append(measure_latency(predictor, files))
    two, three = statistics.median(rounds["two_head"]), statistics.median(rounds["softmax"])
    # Model-only time for one pre-decoded image, to show what decode costs.
    from tf_twohead.data.images import load_rgb

    image = load_rgb(files[0], args.size)[None]
    model_only = {kind: median_ms(lambda p=predictor: p.raw(image), repeats=50, warmup=5)
                  for kind, predictor in predictors.items()}
    decode = [median_ms(lambda f=path: load_rgb(f, args.size), repeats=1, warmup=0)
              for path in files]
    return {"latency_ms_two_head": two, "latency_ms_three_output": three,
            "latency_ratio": two / three, "rounds": args.rounds,
            "model_only_ms_two_head": model_only["two_head"],
            "model_only_ms_three_output": model_only["softmax"],
            "decode_resize_ms": statistics.median(decode)}


def part_train(args, root: Path) -> dict:
    import keras
    import tensorflow as tf

    from tf_twohead import config, models, training
    from tf_twohead.data.pipeline import datasets_for, load_splits
    from tf_twohead.inference import set_threads

    set_threads(2)
    cfg = config.load("configs/two_head.yaml", [
        f"data.root={root}", f"data.img_size={args.size}", f"model.width={args.width}",
        f"output_dir={root / 'runs'}", "train.batch_size=64"])
    start = time.perf_counter()
    split = load_splits(cfg, ("train",), progress=False)["train"]
    cache_build = time.perf_counter() - start
    train_ds = datasets_for(cfg, split).repeat()

    # Input pipeline alone.
    it = iter(train_ds)
    for _ in range(5):
        next(it)
    start, count = time.perf_counter(), 0
    for _ in range(args.pipeline_batches):
        count += len(next(it)[0])
    pipeline_rate = count / (time.perf_counter() - start)

    class BatchTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.t)

    def throughput(dataset) -> float:
        keras.utils.set_random_seed(0)
        model = training.compile_model(models.from_config(cfg), cfg)
        timer = BatchTimer()
        timer.times = []
        model.fit(dataset, epochs=1, steps_per_epoch=args.steps + 3, callbacks=[timer],
                  verbose=0)
        return 64 / statistics.median(timer.times[3:])  # skip tracing and warm-up steps

    x, y = next(iter(datasets_for(cfg, split)))
    fixed = tf.data.Dataset.from_tensors((x, y)).repeat()
    fixed_rate = throughput(fixed)
    pipeline_train_rate = throughput(train_ds)
    return {"train_img_s_fixed_batch": fixed_rate,
            "train_img_s_real_pipeline": pipeline_train_rate,
            "pipeline_img_s": pipeline_rate,
            "pipeline_over_training": pipeline_rate / pipeline_train_rate,
            "cache_build_img_s": len(split) / cache_build,
            "threads": 2, "batch": 64, "images": len(split)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--latency-images", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pipeline-batches", type=int, default=30)
    parser.add_argument("--part", choices=["latency", "train"])
    parser.add_argument("--root")
    args = parser.parse_args()

    if args.part:  # child process: one part, JSON on the last line
        result = (part_latency if args.part == "latency" else part_train)(args, Path(args.root))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_jpegs(root, args.images)
        results = {}
        for part in ("latency", "train"):
            cmd = [sys.executable, __file__, "--part", part, "--root", str(root),
                   *[a for a in sys.argv[1:] if a not in ("--part",)]]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{part} failed:\n{done.stderr[-3000:]}")
            results.update(json.loads(done.stdout.strip().splitlines()[-1]))

    r = results
    print(f"tf-twohead core benchmark: ShuffleNetV2 x{args.width} @ {args.size} px, "
          f"{os.cpu_count()} CPUs")
    print("\nPer-image latency, file -> probabilities (median of "
          f"{args.latency_images} images x {r['rounds']} interleaved rounds, 1 thread)")
    print(f"  two-head       {r['latency_ms_two_head']:7.2f} ms   "
          f"(model only {r['model_only_ms_two_head']:.2f} ms)")
    print(f"  three-output   {r['latency_ms_three_output']:7.2f} ms   "
          f"(model only {r['model_only_ms_three_output']:.2f} ms)")
    print(f"  decode+EXIF+resize of a 640x480 JPEG: {r['decode_resize_ms']:.2f} ms")
    print(f"  ratio two-head / three-output: {r['latency_ratio']:.3f}   (target <= 1.05)")
    print("\nTraining throughput, batch 64, 2 threads (median step)")
    print(f"  fixed in-memory batch  {r['train_img_s_fixed_batch']:7.1f} img/s   (target >= 75)")
    print(f"  real pipeline          {r['train_img_s_real_pipeline']:7.1f} img/s")
    print("\nInput pipeline alone (cache -> shuffle -> gather -> rotate -> prefetch)")
    print(f"  {r['pipeline_img_s']:7.1f} img/s = {r['pipeline_over_training']:.1f}x the "
          f"training consumption rate   (target >= 3x)")
    print(f"  one-off cache build (640x480 JPEG -> {args.size} px): "
          f"{r['cache_build_img_s']:.0f} img/s")
    print("\nJSON: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in r.items()}))


if __name__ == "__main__":
    main()
