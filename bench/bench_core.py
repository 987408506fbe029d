"""Core benchmark: latency, training throughput against PyTorch, pipeline, first epoch (x0.5).

Prints, for this CPU (its vector extensions first: TensorFlow's speed depends on them):
  1. per-image latency, file -> probabilities (decode, EXIF, RGB, resize, model,
     activation; one image at a time, 1 thread), of the two-head and the three-output
     model, interleaved in one process so their ratio is fair on a noisy machine;
  2. training throughput (images/s, batch 64, 2 threads) on a fixed in-memory batch
     and through the real pipeline (cache -> shuffle -> gather -> rotate -> prefetch),
     at 256 and 64 px, beside the PyTorch reference (bench/torch_reference.py under the
     system python3, torchvision ShuffleNetV2 x0.5 + the same two heads, 2 threads;
     its real pipeline is its DataLoader: PIL decode, resize, rotate each epoch);
  3. input-pipeline-only throughput and its ratio to the training consumption rate;
  4. the one-off cache build rate (decode of the JPEG files with EXIF + resize);
  5. the wall time of the first and of a later epoch of `training.train` at 64 px
     (tracing, checkpoints and logs included), i.e. what a small run costs.

Targets: latency ratio <= 1.05; pipeline >= 3x training; training >= 1.5x the PyTorch
reference at both sizes (issue 6).
Each part runs in its own process because TensorFlow's thread count is fixed at start.

Usage: python bench/bench_core.py [--sizes 256,64] [--width 0.5] [--images 384] [--steps 20]
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

from timing import cpu_flags, median_ms, step_timer  # noqa: E402 - bench/ is the script's folder

import tf_twohead  # noqa: E402,F401 - first, so its oneDNN default applies before TF loads


def make_jpegs(root: Path, n: int, seed: int = 0, size: tuple[int, int] = (640, 480),
               splits: dict[str, int] | None = None) -> None:
    """Phone-like inputs: JPEGs of smooth random content, 3 classes, a CSV per split.

    By default every split lists the same `n` images; `splits` gives each its own count.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts = splits or {"train": n, "val": n, "test": n}
    shared = splits is None
    rows, index = {name: [] for name in counts}, 0
    for name, count in counts.items():
        for _ in range(n if shared else count):
            small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
            rel = f"class {index % 3}/img_{index}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(root / rel, quality=90)
            rows[name].append(f"{rel},{index % 3}")
            index += 1
        if shared:
            break
    for name in counts:
        lines = rows[next(iter(counts))] if shared else rows[name]
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")



def part_latency(args, root: Path) -> dict:
    from tf_twohead import models
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.inference.latency import measure_latency
    from tf_twohead.inference.predictor import Predictor

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

    from tf_twohead import config
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.data.pipeline import checked_splits, datasets_for
    from tf_twohead.pretrained import load as pretrained
    from tf_twohead.recipe import compiling as recipe

    set_threads(2, step_pixels=64 * args.size ** 2)  # as `tf-twohead train` does
    cfg = config.load_config("configs/two_head.yaml", [
        f"data.root={root}", f"data.img_size={args.size}", f"model.width={args.width}",
        f"output_dir={root.parent / 'runs'}", "train.batch_size=64"])
    start = time.perf_counter()
    split = checked_splits(cfg, ("train",), progress=False)["train"]
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

    def throughput(dataset) -> float:
        keras.utils.set_random_seed(0)
        model = recipe.compile_model(pretrained.build_model(cfg), cfg)
        timer = step_timer()
        model.fit(dataset, epochs=1, steps_per_epoch=args.steps + 3, callbacks=[timer],
                  verbose=0)
        return 64 / statistics.median(timer.times[3:])  # skip tracing and warm-up steps

    x, y = next(iter(datasets_for(cfg, split)))
    fixed = tf.data.Dataset.from_tensors((x, y)).repeat()
    fixed_rate = throughput(fixed)
    pipeline_train_rate = throughput(train_ds)
    return {"size": args.size, "train_img_s_fixed_batch": fixed_rate,
            "train_img_s_real_pipeline": pipeline_train_rate,
            "pipeline_img_s": pipeline_rate,
            "pipeline_over_training": pipeline_rate / pipeline_train_rate,
            "cache_build_img_s": len(split) / cache_build,
            "threads": 2, "batch": 64, "images": len(split)}


def part_epochs(args, root: Path) -> dict:
    """Wall time of each epoch of `training.train` (64 px, the reference's 6,000 images)."""
    import keras

    from tf_twohead import config
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.data.pipeline import checked_splits
    from tf_twohead.training import run as training

    set_threads(2, step_pixels=64 * 64 ** 2)  # as `tf-twohead train` does
    cfg = config.load_config("configs/two_head.yaml", [
        f"data.root={root}", "data.img_size=64", f"output_dir={root / 'runs'}",
        "train.epochs=3", "exp=epochs"])
    checked_splits(cfg, ("train", "val", "test"), progress=False)  # the cache is not an epoch

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    start = time.perf_counter()
    training.train(cfg, overwrite=True, verbose=0, callbacks=[EpochTimer()])
    # The run's own callbacks (checkpoints, CSV, TensorBoard, curves) run before ours, so
    # each epoch's time includes them; setup before the first epoch is counted apart.
    total = time.perf_counter() - start
    return {"first_epoch_s": times[0], "later_epoch_s": statistics.median(times[1:]),
            "run_s": total, "epoch_images": 6000}


def torch_speed(args, size: int, data: Path | None) -> float | None:
    """Images/s of the PyTorch reference (system python3), or None when it cannot run."""
    cmd = [args.torch_python, str(Path(__file__).with_name("torch_reference.py")), "speed",
           "--size", str(size), "--steps", str(args.steps), "--threads", "2"]
    if data is not None:
        cmd += ["--data", str(data)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return None
    if done.returncode:
        print(f"PyTorch reference unavailable ({done.stderr.strip().splitlines()[-1:]}); "
              "apt-get install python3-torchvision", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["img_s"]


def run_part(part: str, root: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--root", str(root), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{part} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,64", help="training sizes, the first for latency")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--latency-images", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pipeline-batches", type=int, default=30)
    parser.add_argument("--torch-python", default="/usr/bin/python3")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: "
                        "latency, train, torch, epochs")
    parser.add_argument("--part", choices=["latency", "train", "epochs"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--root")
    args = parser.parse_args()

    if args.part:  # child process: one part, JSON on the last line
        part = {"latency": part_latency, "train": part_train, "epochs": part_epochs}[args.part]
        print(json.dumps(part(args, Path(args.root))))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    common = ["--width", str(args.width), "--steps", str(args.steps), "--latency-images",
              str(args.latency_images), "--rounds", str(args.rounds), "--pipeline-batches",
              str(args.pipeline_batches)]
    print(f"tf-twohead core benchmark: ShuffleNetV2 x{args.width}, {os.cpu_count()} CPUs")
    print(f"CPU vector extensions: {cpu_flags()}")
    print(f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        make_jpegs(root, args.images)
        if "latency" not in skip:
            r = run_part("latency", root, [*common, "--size", str(sizes[0])])
            print(f"\nPer-image latency @ {sizes[0]} px, file -> probabilities (median of "
                  f"{args.latency_images} images x {r['rounds']} interleaved rounds, 1 thread)")
            print(f"  two-head       {r['latency_ms_two_head']:7.2f} ms   "
                  f"(model only {r['model_only_ms_two_head']:.2f} ms)")
            print(f"  three-output   {r['latency_ms_three_output']:7.2f} ms   "
                  f"(model only {r['model_only_ms_three_output']:.2f} ms)")
            print(f"  decode+EXIF+resize of a 640x480 JPEG: {r['decode_resize_ms']:.2f} ms")
            print(f"  ratio two-head / three-output: {r['latency_ratio']:.3f}   "
                  "(target <= 1.05)")
        rows = []
        if "train" not in skip:
            for size in sizes:
                r = run_part("train", root, [*common, "--size", str(size)])
                ref = {"fixed": None, "real": None}
                if "torch" not in skip:
                    ref = {"fixed": torch_speed(args, size, None),
                           "real": torch_speed(args, size, root)}
                rows.append((size, r, ref))
            print("\nTraining throughput, two-head, batch 64, 2 threads, median step (img/s); "
                  "ratio = tf-twohead / PyTorch, measured in this run (target >= 1.5)")
            print(f"  {'size':>5}  {'input':14s} {'tf-twohead':>10} {'PyTorch':>9} {'ratio':>6}")
            for size, r, ref in rows:
                for label, ours, theirs in (
                        ("fixed batch", r["train_img_s_fixed_batch"], ref["fixed"]),
                        ("real pipeline", r["train_img_s_real_pipeline"], ref["real"])):
                    ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
                    theirs = f"{theirs:9.1f}" if theirs else "        -"
                    print(f"  {size:>5}  {label:14s} {ours:10.1f} {theirs} {ratio}")
            for size, r, _ in rows:
                print(f"  input pipeline alone @ {size} px: {r['pipeline_img_s']:.0f} img/s = "
                      f"{r['pipeline_over_training']:.1f}x training (target >= 3x); one-off "
                      f"cache build {r['cache_build_img_s']:.0f} img/s (640x480 JPEG)")
        if "epochs" not in skip:
            small = Path(tmp) / "small"
            make_jpegs(small, 0, size=(64, 64),
                       splits={"train": 6000, "val": 1000, "test": 100})
            r = run_part("epochs", small, common)
            print(f"\nA small run: training.train at 64 px, {r['epoch_images']} train + 1,000 "
                  "val images a epoch, 2 threads")
            print(f"  first epoch {r['first_epoch_s']:.1f} s, later epochs {r['later_epoch_s']:.1f}"
                  f" s (median), whole 3-epoch run {r['run_s']:.1f} s")


if __name__ == "__main__":
    main()
