"""The tf-twohead side of bench/anchors.py, one part per process (TensorFlow's thread
count is fixed when it starts); each prints one JSON line.

  export  --root DIR --size S: a two-head x0.5 `.keras` and its float32, dynamic-range
          and int8 `.tflite` (int8 calibrated on the JPEGs), sizes and forward GFLOP.
  train   --root DIR --size S: training images/s, fixed batch 64, 2 threads, median
          step of `model.fit`, and the float32 GEMM rate on 2 threads.
  latency --root DIR --exports DIR: per-image file -> probabilities through
          `Predictor.predict_file` for each `.tflite`, model-only time, decode time,
          and the GEMM rate on 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timing import median_ms, step_timer  # noqa: E402 - bench/ is the script's folder

import tf_twohead  # noqa: E402,F401 - first, so its oneDNN default applies before TF loads

QUANTS = ("none", "dynamic", "int8", "int8_per_tensor")


def forward_gflop(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers, per image."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w, c = layer.output.shape[1:]
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c = layer.output.shape[1:]
            cin = layer.input.shape[-1]
            total += h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return 2 * total / 1e9


def gemm_gflops(threads: int) -> float:
    """This CPU's float32 matmul rate through TensorFlow (1024^3, best of 20)."""
    import tensorflow as tf

    a = tf.random.normal((1024, 1024))
    f = tf.function(lambda: tf.matmul(a, a))
    f()
    best = min(median_ms(f, repeats=1, warmup=1) for _ in range(20))
    return 2 * 1024 ** 3 / (best / 1000) / 1e9


def part_export(args) -> dict:
    import keras
    import numpy as np

    from tf_twohead import models
    from tf_twohead.data.images import load_rgb
    from tf_twohead.export.serving import convert_saved_model, write_serving_model

    out = Path(args.root).parent / "exports"
    out.mkdir(exist_ok=True)
    keras.utils.set_random_seed(0)
    model = models.build("two_head", args.size, 0.5)
    files = sorted(Path(args.root).glob("class */*.jpg"))[:64]
    images = np.stack([load_rgb(f, args.size) for f in files])
    model(images[:32], training=True)  # BatchNorm statistics of real-looking inputs
    result = {"folder": str(out), "forward_gflop": forward_gflop(model)}
    for q in QUANTS:
        saved = write_serving_model(model, out / f"saved_model_{q}", q)
        path = out / f"{q}.tflite"
        path.write_bytes(convert_saved_model(saved, q, images))
        result[f"{q}_kib"] = path.stat().st_size / 1024
    return result


def part_train(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_twohead import config, models
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.pretrained import load as pretrained
    from tf_twohead.recipe import compiling as recipe

    set_threads(2, step_pixels=64 * args.size ** 2)  # as `tf-twohead train` does
    cfg = config.load_config("two_head", [
        f"data.img_size={args.size}", "model.width=0.5", "train.batch_size=64"])
    keras.utils.set_random_seed(0)
    model = recipe.compile_model(pretrained.build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, args.size, args.size, 3)).astype("float32")
    y = {h: rng.integers(0, 2, (64, 1)).astype("float32") for h in cfg.model.heads}
    data = tf.data.Dataset.from_tensors((x, y)).repeat()

    timer = step_timer()
    model.fit(data, epochs=1, steps_per_epoch=args.steps + 3, callbacks=[timer], verbose=0)
    flops = forward_gflop(models.build("two_head", args.size, 0.5))
    # The GEMM rate is a 2-thread figure: a small step's process runs 1-thread ops.
    two = tf.config.threading.get_intra_op_parallelism_threads() == 2
    return {"img_s": 64 / statistics.median(timer.times[3:]),  # skip tracing, warm-up
            "gemm_gflops": gemm_gflops(2) if two else None,
            "train_gflop_per_image": 3 * flops}


def part_latency(args) -> dict:
    from tf_twohead.data.images import load_rgb
    from tf_twohead.inference.latency import measure_latency
    from tf_twohead.inference.predictor import Predictor

    files = sorted(Path(args.root).glob("class */*.jpg"))[: args.count]
    folder = Path(args.exports)
    predictors = {q: Predictor(folder / f"{q}.tflite", threads=1) for q in QUANTS}
    image = load_rgb(files[0], args.size)[None]
    result = {}
    for q, predictor in predictors.items():
        result[f"{q}_ms"] = statistics.median(
            measure_latency(predictor, files) for _ in range(3))
        result[f"{q}_model_ms"] = median_ms(lambda p=predictor: p.raw(image), repeats=100)
    result["decode_ms"] = statistics.median(
        median_ms(lambda f=f: load_rgb(f, args.size), repeats=3, warmup=1) for f in files)
    from tf_twohead.core.runtime import set_threads

    set_threads(1)
    result["gemm_gflops"] = gemm_gflops(1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["export", "train", "latency"])
    parser.add_argument("--root", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--exports")
    args = parser.parse_args()
    part = {"export": part_export, "train": part_train, "latency": part_latency}[args.part]
    print(json.dumps(part(args)), flush=True)


if __name__ == "__main__":
    main()
