"""The combined-encoders demo: staged model against the equal-budget baseline and the control.

On Fashion-MNIST's 10 classes (64 px, 6000 train / 1000 val / 2000 test images) with
the coarse groups of configs/combined.yaml (tops, footwear, other), per seed:

- `combined`: encoder A on the groups (4 epochs), encoder B on the classes (4), the
  joined model frozen (1) then unfrozen (3): configs/combined.yaml;
- `baseline`: the plain fine classifier, 12 epochs (configs/combined_baseline.yaml);
- `control`: the two-encoder model with untrained encoders, 12 epochs
  (configs/combined_control.yaml).

Every run is evaluated on the test split (best validation-accuracy epoch). Prints the
CPU's vector flags, a per-seed table and the mean and spread over seeds (accuracy,
top-5, macro F1, parameters, dynamic-range TFLite size, training time), and draws the
post's three-panel figure (train loss, valid loss, accuracy; the first seed's runs).
An interrupted run resumes where it stopped when the script is run again (its time is
then that of the last, resumed part).

    python bench/combined_encoders.py [--data demo_data/fm10] [--seeds 1,2,3]
    python bench/combined_encoders.py --stages 10,10,1,9   # the post's 30-epoch budget

`--stages A,B,C,D` sets the staged run's coarse, fine, frozen and unfrozen epochs; the
baseline and the control then get their sum (run names gain `_e<sum>`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import cpu_flags  # noqa: E402 - bench/ is the script's folder

import tf_twohead  # noqa: E402,F401 - oneDNN on before TensorFlow loads

STAGES = ("coarse", "fine", "frozen", "unfrozen")
RUNS = {"combined": "configs/combined.yaml", "baseline": "configs/combined_baseline.yaml",
        "control": "configs/combined_control.yaml"}


def cli(*args: str, check: bool = True) -> None:
    subprocess.run([sys.executable, "-m", "tf_twohead.cli", *args], check=check)


def tflite_kb(run: Path) -> float:
    """Size of the dynamic-range export (kept as *.parity-failed.tflite if parity failed)."""
    for name in ("best.dynamic.tflite", "best.dynamic.parity-failed.tflite"):
        if (run / "exports" / name).is_file():
            return (run / "exports" / name).stat().st_size / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo_data/fm10")
    p.add_argument("--output-dir", default="saved_models/combined_demo")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--figure", help="the 3-panel figure (default: <output-dir>/"
                   "combined_encoders[_e<epochs>].png)")
    p.add_argument("--stages", default="4,4,1,3", help="coarse,fine,frozen,unfrozen epochs")
    args = p.parse_args()
    stages = [int(e) for e in args.stages.split(",")]
    total = sum(stages)
    budget = {
        "combined": ["train.stages={" + ", ".join(
            f"{k}: {v}" for k, v in zip(STAGES, stages)) + "}"],
        "baseline": [f"train.epochs={total}"],
        "control": [f"train.stages.unfrozen={total}"],
    }
    tag = "" if stages == [4, 4, 1, 3] else f"_e{total}"
    figure = args.figure or str(Path(args.output_dir) / f"combined_encoders{tag}.png")
    print(f"Budget: {total} epochs; staged {dict(zip(STAGES, stages))}")
    print(f"CPU vector flags: {cpu_flags()}")
    if not Path(args.data, "test.csv").is_file():
        cli("data", "fashion-mnist", args.data, "--classes", "10", "--size", "64",
            "--train", "6000", "--val", "1000", "--test", "2000")
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {name: {} for name in RUNS}
    for seed in seeds:
        for name, config_path in RUNS.items():
            run = Path(args.output_dir) / f"{name}{tag}_s{seed}"
            if not (run / "metrics.json").is_file():
                start = time.perf_counter()
                cli("train", "--config", config_path, f"data.root={args.data}",
                    f"output_dir={args.output_dir}", f"exp={run.name}", f"train.seed={seed}",
                    *budget[name], "--resume")
                seconds = time.perf_counter() - start
                if not (run / "bench_seconds.json").is_file():
                    (run / "bench_seconds.json").write_text(json.dumps({"seconds": seconds}))
                cli("evaluate", str(run), "--latency-images", "20")
                cli("convert", str(run), "--quantize", "dynamic",
                    "--parity-images", "1000", check=False)  # a parity failure is reported
            m = json.loads((run / "metrics.json").read_text())
            results[name][seed] = {
                "accuracy": m["classes"]["accuracy"], "top5": m["classes"]["top5"],
                "macro_f1": m["classes"]["macro_f1"], "params": m["params"],
                "tflite_kb": tflite_kb(run),
                "minutes": json.loads((run / "bench_seconds.json").read_text())["seconds"] / 60,
            }
    print("\nTest split, per seed (accuracy):")
    print("| run | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for name in RUNS:
        print(f"| {name} | " + " | ".join(f"{results[name][s]['accuracy']:.4f}"
                                          for s in seeds) + " |")
    print(f"\nTest split, mean (min-max) over seeds {seeds}:")
    print("| run | accuracy | top-5 | macro F1 | params | TFLite dynamic KiB | train min |")
    print("|---|---|---|---|---|---|---|")
    for name in RUNS:
        rows = [results[name][s] for s in seeds]

        def spread(key, rows=rows, fmt="{:.4f}"):
            values = [r[key] for r in rows]
            return (fmt.format(statistics.mean(values)) + " ("
                    + fmt.format(min(values)) + "-" + fmt.format(max(values)) + ")")

        print(f"| {name} | {spread('accuracy')} | {spread('top5')} | {spread('macro_f1')} | "
              f"{rows[0]['params']:,} | {rows[0]['tflite_kb']:.0f} | "
              f"{statistics.mean(r['minutes'] for r in rows):.1f} |")
    first = [str(Path(args.output_dir) / f"{name}{tag}_s{seeds[0]}") for name in RUNS]
    cli("compare", *first, "--plot", figure, "--markdown")


if __name__ == "__main__":
    main()
