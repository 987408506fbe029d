"""One function per `tf-twohead` command: check what can be checked without TensorFlow
(config, paths, arguments), then load it quietly and call the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tf_twohead.cli import console
from tf_twohead.cli.training import train, tune
from tf_twohead.core.defaults import BENCHMARK_FORMATS


def data(args) -> int:
    if args.data_command == "audit":
        from tf_twohead.cli.audit import audit_command

        return audit_command(args)
    if args.data_command == "tfds":
        from tf_twohead.data.tfds import write_tfds

        result = write_tfds(args.name, args.out, args.label, args.coarse_label, args.size,
                            args.val_fraction, args.limit, args.data_dir, args.seed)
        counts = result["counts"]
        print(f"Wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(f"Its classes{' and coarse groups' if args.coarse_label else ''}: "
              f"{result['config']}; train with e.g. tf-twohead train --config combined "
              f"--config {result['config']}")
        return 0
    from tf_twohead.data.sources import write_fashion_mnist

    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} is not empty: its old images would stay beside the new "
                              "ones and its CSVs be rewritten. Choose another folder, or "
                              "pass --overwrite.")
    counts = write_fashion_mnist(args.out, args.source, args.size, args.train, args.val,
                                 args.test, args.seed, classes=args.classes)
    print(f"Wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"Next: tf-twohead train --config two_head data.root={args.out} "
          f"data.img_size={args.size}")
    return 0


def evaluate(args) -> int:
    from tf_twohead.core.run_folder import resolve_model

    model = resolve_model(args.model)
    if model.suffix == ".keras":
        console.load_tensorflow()
    from tf_twohead.core import runtime, tables
    from tf_twohead.evaluation import evaluate as evaluation

    if model.suffix == ".keras":
        runtime.set_threads(args.threads)
    result = evaluation.evaluate(model, args.data, args.split, args.threads,
                                 args.target_precision, args.latency_images)
    print(f"Evaluated {model} ({result['format']}, {result['quantization']}) on the "
          f"{result['split']} split of {result['data']}: {result['images']:,} images")
    print(tables.markdown_table(evaluation.head_table(result)))
    for name, m in result.get("at_target_precision", {}).get("heads", {}).items():
        if not m["reached_on_val"]:
            print(f"warning: {name}: no threshold reaches precision {args.target_precision:g} "
                  f"on the val split; its row uses t={m['threshold']:.3f} and means little.")
    params = f"; {result['params']:,} parameters" if result.get("params") else ""
    print(f"Latency {result['latency_ms']:.2f} ms per image (file -> probabilities, "
          f"{args.threads or 'all'} thread(s)); model file {result['model_bytes'] / 1e6:.1f} "
          f"MB{params}")
    folder = Path(result["files"][0]).parent
    print(f"Wrote in {folder}/: " + ", ".join(Path(f).name for f in result["files"]))
    return 0


def compare(args) -> int:
    from tf_twohead.core import tables
    from tf_twohead.evaluation import compare as comparison
    from tf_twohead.plots.curves import plot_runs

    if args.plot:
        print(f"Wrote {plot_runs(comparison.histories(args.runs), args.plot)}")
        if not all(comparison.has_metrics(run) for run in args.runs):
            print("(no results table: evaluate every run first, tf-twohead evaluate RUN)")
            return 0
    table = comparison.compare(args.runs)
    if args.markdown:
        print(tables.markdown_table(table, "{:.3f}"))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def predict(args) -> int:
    from tf_twohead.core.run_folder import resolve_model
    from tf_twohead.inference import files as predicting

    model = resolve_model(args.model)
    if args.save and Path(args.save).is_dir():  # found now, not after every image
        raise ValueError(f"--save {args.save} is a folder; give the CSV file to write, "
                         f"e.g. --save {Path(args.save) / 'predictions.csv'}")
    images = predicting.expand_images(args.images)
    if model.suffix == ".keras":
        console.load_tensorflow()
        from tf_twohead.core import runtime

        runtime.set_threads(args.threads)
    from tf_twohead.inference.predictor import Predictor

    predictor = Predictor(model, threads=args.threads)
    rows, failures = [], 0
    for path in images:
        try:
            row = predicting.predict_one(predictor, path)
        except OSError as e:
            failures += 1
            print(f"{path}: error: {e}", file=sys.stderr)
            continue
        rows.append(row)
        print(json.dumps(row) if args.json else predicting.line(row), flush=True)
    if args.save:
        print(f"Wrote {predicting.write_csv(rows, args.save)} ({len(rows)} rows)",
              file=sys.stderr)
    return 1 if failures else 0


def convert(args) -> int:
    from tf_twohead.core.run_folder import resolve_model

    model = resolve_model(args.model)
    if model.suffix != ".keras":
        raise ValueError(f"convert reads a .keras model or a run folder. Received: {model}")
    if args.format == "onnx" and args.quantize != "none":
        raise ValueError(f"--format onnx exports float32 only (--quantize none); for "
                         f"--quantize {args.quantize} use --format tflite.")
    console.load_tensorflow()
    from tf_twohead.export import parity
    from tf_twohead.export import tflite as export

    if args.format == "onnx":
        from tf_twohead.export.onnx import to_onnx

        result = to_onnx(model, args.out, args.data, args.parity_images)
    else:
        result = export.to_tflite(model, args.quantize, args.calibration, args.out,
                                  args.data, args.parity_images)
    print(f"Wrote {result['path']} ({result['bytes'] / 1024:,.0f} KiB, {args.quantize}); "
          f"outputs {', '.join(result['metadata']['outputs'])}")
    print("\n".join(parity.summary_lines(result["parity"])))
    note = export.size_note(Path(result["path"]), args.quantize)
    if note:
        print(note)
    return 0


def benchmark(args) -> int:
    from tf_twohead.core.run_folder import resolve_model

    model = resolve_model(args.model)
    if model.suffix != ".keras":
        raise ValueError(f"benchmark reads a .keras model or a run folder. Received: {model}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in BENCHMARK_FORMATS] or ([] if formats else [""])
    if unknown:
        raise ValueError(f"--formats {args.formats!r}: {unknown[0]!r} is not one of "
                         f"{', '.join(BENCHMARK_FORMATS)} (comma-separated).")
    console.load_tensorflow()
    from tf_twohead.core import runtime, tables
    from tf_twohead.core.run_folder import EXPORTS
    from tf_twohead.export.benchmark import NAME
    from tf_twohead.export.benchmark import benchmark as run_benchmark

    runtime.set_threads(args.threads)
    table = run_benchmark(model, formats, args.split, args.threads, args.data,
                          args.calibration, args.target_precision, args.latency_images,
                          args.parity_images)
    print(tables.markdown_table(table, "{:.3f}"))
    folder = model.parent / EXPORTS
    print(f"Wrote {folder}/{NAME}.csv, {NAME}.md, {NAME}.png")
    return 0


def weights(args) -> int:
    out = Path(args.out) if args.out else Path(args.file).with_suffix(".weights.h5")
    if not out.name.endswith(".weights.h5"):
        raise ValueError(f"--out must end with .weights.h5 (Keras' weights format). "
                         f"Received: {out}")
    if not Path(args.file).is_file():
        raise FileNotFoundError(f"No such file: {args.file}")
    console.load_tensorflow()
    from tf_twohead.pretrained import torchvision as weights_lib

    model, width = weights_lib.import_torchvision(args.file, args.width, return_width=True)
    weights_lib.save_weights(model, out)
    checked = weights_lib.hash_in_name(args.file)
    origin = "given" if args.width else "read from the file"
    print(f"Wrote {out}: ShuffleNetV2 x{width} ({origin}), {len(model.weights)} tensors, "
          f"{model.count_params():,} values"
          + (f"; SHA-256 prefix {checked} checked" if checked else ""))
    print(f"Train from it with model.pretrained={out} (model.width={width}), or load it with "
          f"tf_twohead.shufflenet_v2({width}).load_weights({str(out)!r})")
    return 0


def config(args) -> int:
    from tf_twohead.config import presets
    from tf_twohead.core.fileio import atomic_write_text

    if args.config_command == "list":
        for name in presets.preset_names():
            first = presets.text(name).splitlines()[0].lstrip("# ")
            print(f"{name:20} {first}")
        return 0
    if args.config_command == "show":
        print(presets.text(args.name), end="")
        return 0
    target = Path(args.file)
    if target.exists():
        raise FileExistsError(f"{target} exists; choose another file name.")
    atomic_write_text(target, presets.text(args.name))
    print(f"Wrote {target}; train with: tf-twohead train --config {target}")
    return 0


def clean(args) -> int:
    from tf_twohead.cli import clean as cleaning

    output = Path(args.output_dir)
    items = cleaning.run_items(args.runs)
    if args.caches or args.all_caches:
        items += cleaning.cache_items(output, args.all_caches, args.cache_dir)
    if args.trials:
        items += cleaning.trial_items(output)
    if not (args.runs or args.caches or args.all_caches or args.trials):
        raise ValueError("Say what to clean: RUN folders, --caches, --all-caches or --trials "
                         "(add --dry-run to list only).")
    cleaning.remove(items, args.dry_run)
    return 0


COMMANDS = {"data": data, "train": train, "tune": tune, "evaluate": evaluate,
            "compare": compare, "predict": predict, "convert": convert,
            "benchmark": benchmark, "weights": weights,
            "config": config, "clean": clean}
