"""Backbones side by side: parameters, TFLite size and per-image latency of each two-head model.

For ShuffleNetV2 (x0.5, x1.0) and keras.applications' MobileNetV3 (small, large; alpha
1.0 and 0.75), each with the two 1x1-conv heads (`--head-width`, 1024 by default), it
prints:
  - parameters (Keras count, BN statistics included);
  - the dynamic-range TFLite file size, converted with our exporter;
  - the per-image LiteRT `invoke` latency on one uint8 image, 1 thread (median);
  - the Keras latency at batch 1, 1 thread (median);
  - each latency as a ratio to ShuffleNetV2 x0.5, measured in the same run.
Weights are random (sizes and speeds do not depend on them), so it runs offline.

Usage: python bench/bench_backbones.py [--size 256] [--head-width 1024] [--repeats 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timing import cpu_flags, median_ms  # noqa: E402 - bench/ is the script's folder

import tf_twohead  # noqa: E402,F401 - first, so its oneDNN default applies before TF loads
from tf_twohead.export import serving

MODELS = (("shufflenet_v2", 0.5), ("shufflenet_v2", 1.0), ("mobilenet_v3_small", 0.75),
          ("mobilenet_v3_small", 1.0), ("mobilenet_v3_large", 0.75),
          ("mobilenet_v3_large", 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--head-width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from tf_twohead import models

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"CPU vector extensions: {cpu_flags()}")
    print(f"two-head models at {args.size} px, heads {args.head_width} wide, random weights\n")
    image = np.random.default_rng(0).integers(0, 256, (1, args.size, args.size, 3), np.uint8)
    rows = []
    for backbone, width in MODELS:
        model = models.build("two_head", args.size, width, args.head_width, backbone=backbone)
        with tempfile.TemporaryDirectory() as tmp:
            saved = serving.write_serving_model(model, Path(tmp) / "sm")
            flatbuffer = serving.convert_saved_model(saved, "dynamic")
        runner = Interpreter(model_content=flatbuffer, num_threads=1).get_signature_runner()
        lite_ms = median_ms(lambda runner=runner: runner(image=image), args.repeats)
        keras_fn = tf.function(lambda x, model=model: model(x, training=False))
        keras_ms = median_ms(lambda fn=keras_fn: fn(image), args.repeats)
        rows.append((f"{backbone} x{width}", model.count_params(), len(flatbuffer) / 1024,
                     lite_ms, keras_ms))
    base_lite, base_keras = rows[0][3], rows[0][4]
    print("| backbone | params | TFLite dynamic (KiB) | TFLite ms (1 thread) | ratio "
          "| Keras ms (1 thread) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, params, kib, lite_ms, keras_ms in rows:
        print(f"| {name} | {params:,} | {kib:,.0f} | {lite_ms:.2f} | {lite_ms / base_lite:.2f} "
              f"| {keras_ms:.2f} | {keras_ms / base_keras:.2f} |")


if __name__ == "__main__":
    main()
