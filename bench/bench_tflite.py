"""TFLite benchmark: size, latency and parity of every quantization mode (x0.5 @ 256 px).

For the two-head and the three-output model, each converted with none / float16 /
dynamic / int8, it prints:
  - the file size;
  - per-image latency with LiteRT (XNNPACK), 1 and 2 threads, file -> probabilities
    (decode, EXIF, RGB, resize, model, activation; the article's definition);
  - the bare `invoke` time on a pre-decoded image, and the wrapper ratio;
  - parity against the `.keras` model (max |dp|, agreement, F1 change).

Parity needs trained models, so the script first trains both models briefly at 256 px
on a Fashion-MNIST subset (Debian's dataset-fashion-mnist; see tf-twohead data).

Targets (issue 3): two-head dynamic file <= 700 KB; f32 latency (1 thread) within
1.3x of bare invoke; two-head / three-output latency <= 1.05.

Usage: python bench/bench_tflite.py [--epochs 2] [--train 3000] [--val 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timing import median_ms  # noqa: E402 - bench/ is the script's folder

import tf_twohead  # noqa: E402,F401 - first, so its oneDNN default applies before TF loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--latency-images", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tf_twohead import config
    from tf_twohead.core.errors import ParityError
    from tf_twohead.data.images import load_rgb
    from tf_twohead.data.sources import write_fashion_mnist
    from tf_twohead.export.serving import QUANTIZATIONS
    from tf_twohead.export.tflite import to_tflite
    from tf_twohead.inference.latency import measure_latency
    from tf_twohead.inference.predictor import Predictor
    from tf_twohead.training import run as training

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fashion"
        write_fashion_mnist(root, size=64, train=args.train, val=args.val, test=200,
                            progress=False)
        runs = {}
        for kind, config_file in (("two_head", "configs/two_head.yaml"),
                                  ("three_output", "configs/three_class.yaml")):
            cfg = config.load_config(config_file, [
                f"data.root={root}", f"data.img_size={args.size}", f"exp={kind}",
                f"output_dir={Path(tmp) / 'runs'}", f"train.epochs={args.epochs}"])
            print(f"training {kind} at {args.size} px for {args.epochs} epochs ...", flush=True)
            training.train(cfg, verbose=0)
            runs[kind] = cfg.run_dir

        files = sorted((root / "screens").glob("test_*.jpg"))[: args.latency_images // 2]
        files += sorted((root / "documents").glob("test_*.jpg"))[: args.latency_images // 2]
        image = load_rgb(files[0], args.size)[None]
        rows = {}
        for kind, run in runs.items():
            for mode in QUANTIZATIONS:
                print(f"converting {kind} / {mode} ...", flush=True)
                try:
                    result = to_tflite(run, mode, calibration=200, parity_images=args.val,
                                       progress=False)
                    path, report = Path(result["path"]), result["parity"]
                except ParityError as e:  # measured all the same, and marked FAIL
                    path, report = e.path, e.report
                rows[kind, mode] = {"bytes": path.stat().st_size, "parity": report,
                                    "path": path}
        # Latency, interleaved across models so they share the machine's state.
        predictors = {(key, threads): Predictor(row["path"], threads=threads)
                      for key, row in rows.items() for threads in (1, 2)}
        latency = {k: [] for k in predictors}
        for _ in range(args.rounds):
            for key, predictor in predictors.items():
                latency[key].append(measure_latency(predictor, files))
        bare = {key: median_ms(lambda p=p: p.raw(image)) for key, p in predictors.items()}

    print(f"\nTFLite (LiteRT + XNNPACK), ShuffleNetV2 x0.5 @ {args.size} px, "
          f"{os.cpu_count()} CPUs; latency = median file -> probabilities over "
          f"{len(files)} images x {args.rounds} rounds")
    header = ("| model | quantization | size KB | latency 1 thr ms | latency 2 thr ms | "
              "bare invoke 1 thr ms | wrapper ratio | main max dp | main agreement | "
              "main F1 change | aux agreement | parity |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for (kind, mode), row in rows.items():
        l1 = statistics.median(latency[(kind, mode), 1])
        l2 = statistics.median(latency[(kind, mode), 2])
        b1 = bare[(kind, mode), 1]
        main_h = row["parity"]["heads"]["main"]
        aux_h = row["parity"]["heads"]["aux"]
        print(f"| {kind} | {mode} | {row['bytes'] / 1000:.0f} | {l1:.2f} | {l2:.2f} | "
              f"{b1:.2f} | {l1 / b1:.2f} | {main_h['max_abs_diff']:.1e} | "
              f"{main_h['agreement']:.1%} | {main_h['f1_change']:+.4f} | "
              f"{aux_h['agreement']:.1%} | {'pass' if row['parity']['passed'] else 'FAIL'} |")
    print("\nTwo-head / three-output latency ratio (1 thread):")
    for mode in QUANTIZATIONS:
        two = statistics.median(latency[("two_head", mode), 1])
        three = statistics.median(latency[("three_output", mode), 1])
        print(f"  {mode:>8}: {two:.2f} / {three:.2f} ms = {two / three:.3f}   (target <= 1.05)")
    dyn = rows["two_head", "dynamic"]["bytes"]
    print(f"\nTwo-head dynamic-range file: {dyn:,} bytes = {dyn / 1000:.0f} KB = "
          f"{dyn / 1024:.0f} KiB   (target <= 700 KB)")


if __name__ == "__main__":
    main()
