"""Speed against the anchors a PyTorch user really has: torch 2.13, ONNX Runtime, Debian's torch.

One run, one process tree, interleaved rounds (every figure is measured once per round,
in turn, and the median over rounds is kept), so ratios are fair on a noisy machine:
  - training throughput, fixed batch 64, 2 threads, at 256 and 64 px: tf-twohead's
    two-head x0.5 (`model.fit`) against the same network in PyTorch 2.13 (the torchref
    venv) and in Debian's torch 1.13 (system python3), both `bench/torch_reference.py`;
  - per-image latency, file -> probabilities, 1 thread, 256 px: our `.tflite` (float32,
    dynamic range, int8 per-channel and per-tensor) through `Predictor.predict_file`,
    against PyTorch eager and ONNX Runtime running the network exported from PyTorch
    (`bench/torch_latency.py`),
    each with its own decode (Pillow, JPEG draft) on the same 640x480 JPEGs;
  - model-only time and `.tflite` sizes;
  - the CPU's vector flags, and each figure as a fraction of this CPU's measured float32
    GEMM rate (TensorFlow matmul, the same thread count): what the hardware gives a
    well-shaped op, against which a small network's ~1,000 tiny ops per step are judged.

Targets (issues 17, 27): training >= 1.5x torch 2.13 at both sizes; latency (the fastest
`.tflite`) <= 0.6x ONNX Runtime; int8 faster than dynamic range, and per-tensor int8
smaller.

The torchref venv is made by `../shared/bench/torchref.sh` (PyPI's torch 2.13 CPU,
torchvision, onnxruntime); anchors that cannot run are shown as "-" with the reason.

Usage: python bench/anchors.py [--rounds 2] [--sizes 256,64] [--steps 20]
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

from bench_core import make_jpegs  # noqa: E402 - bench/ is the script's folder
from timing import cpu_flags  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"
QUANTS = ("none", "dynamic", "int8", "int8_per_tensor")


def torchref_python() -> tuple[str | None, str]:
    """The torchref venv's python (building it on first use), or None and why not."""
    script = SHARED_BENCH / "torchref.sh"
    if not script.is_file():
        return None, f"{script} not found"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    python = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if not python or not Path(python[0]).is_file():
        return None, f"torchref.sh failed: {done.stderr.strip()[-200:]}"
    return python[0], ""


def run_json(cmd: list[str], env: dict | None = None) -> tuple[dict | None, str]:
    """Run a child, return its last stdout line as JSON, or None and the reason."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
    except OSError as e:
        return None, str(e)
    if done.returncode:
        return None, (done.stderr.strip().splitlines() or ["failed"])[-1][:200]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def ours(part: str, root: Path, extra: list[str]) -> dict:
    result, why = run_json([sys.executable, str(HERE / "anchor_parts.py"), part,
                            "--root", str(root), *extra])
    if result is None:
        sys.exit(f"bench/anchor_parts.py {part} failed: {why}")
    return result


def median_of(results: list[dict | None], key: str) -> float | None:
    values = [r[key] for r in results if r is not None and r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="256,64", help="training sizes")
    parser.add_argument("--latency-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=60, help="JPEGs timed for latency")
    parser.add_argument("--debian-python", default="/usr/bin/python3")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modern, why_modern = torchref_python()
    shim = {"PYTHONPATH": str(SHARED_BENCH)}
    # In the table's column order.
    anchors = {"Debian torch": (args.debian_python, {}), "torch 2.13": (modern, shim)}

    print(f"tf-twohead anchors: two-head ShuffleNetV2 x0.5, {os.cpu_count()} CPUs")
    print(f"CPU vector extensions: {cpu_flags()}")
    if modern is None:
        print(f"torch 2.13 / ONNX Runtime unavailable: {why_modern}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        make_jpegs(root, max(args.images, 64))
        exported = ours("export", root, ["--size", str(args.latency_size)])
        train = {(who, s): [] for s in sizes for who in ("ours", *anchors)}
        latency = {"ours": [], "torch": []}
        why: dict[str, str] = {}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds} ...", flush=True)
            for size in sizes:
                train["ours", size].append(ours("train", root, [
                    "--size", str(size), "--steps", str(args.steps)]))
                for name, (python, env) in anchors.items():
                    result, reason = (None, why_modern) if python is None else run_json(
                        [python, str(HERE / "torch_reference.py"), "speed", "--size",
                         str(size), "--steps", str(args.steps), "--threads", "2"], env)
                    train[name, size].append(result)
                    if result is None:
                        why[name] = reason
            latency["ours"].append(ours("latency", root, [
                "--size", str(args.latency_size), "--count", str(args.images),
                "--exports", exported["folder"]]))
            result, reason = (None, why_modern) if modern is None else run_json(
                [modern, str(HERE / "torch_latency.py"), "--images", str(root), "--size",
                 str(args.latency_size), "--count", str(args.images)], shim)
            latency["torch"].append(result)
            if result is None:
                why["latency"] = reason
        report(args, sizes, exported, train, latency, anchors, why)


def ratio(ours_: float, theirs: float | None, inverse: bool = False) -> str:
    if not theirs:
        return "-"
    return f"{theirs:.1f} (ours {ours_ / theirs:.2f}x)" if not inverse else \
        f"{theirs:.2f} ms (ours {ours_ / theirs:.2f}x)"


def report(args, sizes, exported, train, latency, anchors, why) -> None:
    lines = ["", "| figure | ours | Debian torch 1.13 | torch 2.13 CPU | ONNX Runtime |",
             "|---|---|---|---|---|"]
    versions = {}
    checks = []
    peak2 = median_of([r for s in sizes for r in train["ours", s]], "gemm_gflops")
    for size in sizes:
        mine = median_of(train["ours", size], "img_s")
        flops = median_of(train["ours", size], "train_gflop_per_image")
        row = [f"training img/s, batch 64, 2 threads, {size} px", f"{mine:.0f} "
               f"({100 * mine * flops / peak2:.1f}% of GEMM peak)"]
        for name in anchors:
            theirs = median_of(train[name, size], "img_s")
            row.append(ratio(mine, theirs))
            for r in train[name, size]:
                if r:
                    versions[name] = r["torch"]
            if name == "torch 2.13" and theirs:
                checks.append((f"training {size} px >= 1.5x torch 2.13", mine / theirs >= 1.5,
                               f"{mine / theirs:.2f}x"))
        lines.append("| " + " | ".join(row + ["-"]) + " |")
    lat = {q: median_of(latency["ours"], f"{q}_ms") for q in QUANTS}
    model = {q: median_of(latency["ours"], f"{q}_model_ms") for q in QUANTS}
    peak1 = median_of(latency["ours"], "gemm_gflops")
    fwd = exported["forward_gflop"]
    ort = median_of(latency["torch"], "ort_ms")
    eager = median_of(latency["torch"], "eager_ms")
    for q in QUANTS:
        lines.append(f"| latency file -> probs, 1 thread, {args.latency_size} px, {q} .tflite | "
                     f"{lat[q]:.2f} ms | - | {ratio(lat[q], eager, True)} eager | "
                     f"{ratio(lat[q], ort, True)} |")
    decode = median_of(latency["ours"], "decode_ms")
    their_decode = median_of(latency["torch"], "preprocess_ms")
    lines.append(f"| decode + resize (+ normalise, theirs), 1 thread | {decode:.2f} ms | - | "
                 f"{their_decode or float('nan'):.2f} ms | same |")
    lines.append(
        f"| model only, 1 thread, {args.latency_size} px | "
        + ", ".join(f"{q} {model[q]:.2f} ms" for q in QUANTS)
        + f" ({100 * fwd / model['dynamic'] / peak1 * 1000:.1f}% of GEMM peak, dynamic) | - | "
        + (f"eager {median_of(latency['torch'], 'eager_model_ms'):.2f} ms" if eager else "-")
        + " | " + (f"{median_of(latency['torch'], 'ort_model_ms'):.2f} ms" if ort else "-")
        + " |")
    lines.append(f"| .tflite size, {args.latency_size} px | "
                 + ", ".join(f"{q} {exported[q + '_kib']:.0f} KiB" for q in QUANTS)
                 + " | - | - | - |")
    if ort:
        best = min(QUANTS, key=lambda q: lat[q])
        checks.append((f"latency <= 0.6x ONNX Runtime (fastest file: {best})",
                       lat[best] / ort <= 0.6, f"{lat[best] / ort:.2f}x"))
    # Per-channel int8 stores a scale and a zero point per output channel of every
    # quantized tensor, which at x0.5 outweighs what it saves (docs/export.md): the size
    # target is met by the per-tensor file, the accuracy question by `tf-twohead benchmark`.
    checks.append(("int8 (per-tensor) smaller than dynamic",
                   exported["int8_per_tensor_kib"] < exported["dynamic_kib"],
                   f"{exported['int8_per_tensor_kib']:.0f} vs {exported['dynamic_kib']:.0f} "
                   f"KiB (per-channel int8 {exported['int8_kib']:.0f})"))
    checks.append(("int8 faster than dynamic (model only)", model["int8"] < model["dynamic"],
                   f"{model['int8']:.2f} vs {model['dynamic']:.2f} ms"))
    print("\n".join(lines))
    print(f"\nMedians of {args.rounds} interleaved rounds. Forward {fwd:.3f} GFLOP/image at "
          f"{args.latency_size} px; training counted as 3x forward. Measured float32 GEMM "
          f"peak (TF matmul): {peak1:.0f} GFLOP/s on 1 thread, "
          f"{peak2 or 0:.0f} on 2.")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
          + (f", onnxruntime {latency['torch'][0]['onnxruntime']}"
             if latency["torch"] and latency["torch"][0] else ""))
    for name, reason in why.items():
        print(f"{name} unavailable: {reason}")
    print("\nTargets:")
    for label, ok, figure in checks:
        print(f"  {'met   ' if ok else 'MISSED'} {label}: {figure}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(bench/anchors.py took {time.perf_counter() - start:.0f} s)")
