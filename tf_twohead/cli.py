"""`tf-twohead data|train|tune|evaluate|compare|predict|convert|weights`: parse, call one function.

Every known failure (bad config key, bad data rows, missing files, a run that would be
overwritten) ends with a one-paragraph message and exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    from tf_twohead.defaults import WIDTHS  # no TensorFlow: --help stays instant

    p = argparse.ArgumentParser(prog="tf-twohead", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="write a dataset in the reference layout "
                       "(Fashion-MNIST, or any TFDS image-classification dataset)")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fashion-mnist", help="Fashion-MNIST from its IDX files (offline)")
    f.add_argument("out", help="output dataset folder")
    f.add_argument("--source", help="folder with the IDX files "
                   "(default: /usr/share/datasets/fashion-mnist, then the Keras download)")
    f.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    f.add_argument("--train", type=int, default=6000)
    f.add_argument("--val", type=int, default=1000)
    f.add_argument("--test", type=int, default=2000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--classes", type=int, default=3, choices=[3, 10],
                   help="3: the reference's classes (default); 10: Fashion-MNIST's own")
    g = dsub.add_parser("tfds", help="any TFDS image-classification dataset, with an "
                        "optional coarse label -> data.coarse (downloads when online)")
    g.add_argument("name", help="TFDS name, e.g. oxford_iiit_pet, cifar100")
    g.add_argument("out", help="output dataset folder")
    g.add_argument("--label", default="label", help="the fine label feature (default: label)")
    g.add_argument("--coarse-label", metavar="KEY",
                   help="a coarse label feature (species, coarse_label) -> data.coarse")
    g.add_argument("--size", type=int, metavar="PX",
                   help="resize images to PX x PX (default: keep their size)")
    g.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of the training split held out as val (default 0.2)")
    g.add_argument("--limit", type=int, metavar="N", help="at most N images per split")
    g.add_argument("--data-dir", help="TFDS data_dir (default: TFDS' own, ~/tensorflow_datasets)")
    g.add_argument("--seed", type=int, default=0, help="seed of the train/val split")

    t = sub.add_parser("train", help="train the model a config describes")
    t.add_argument("--config", required=True, action="append", help="YAML file, e.g. "
                   "configs/two_head.yaml; repeat it to layer files (later ones win)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--overwrite", action="store_true", help="start a finished run again")
    t.add_argument("--threads", type=int, help="CPU threads for TensorFlow")

    u = sub.add_parser("tune", help="search head widths (any config keys) with Keras Tuner; "
                       "trials table, Pareto fronts of accuracy against size and latency")
    u.add_argument("--config", required=True, action="append", help="YAML with a tune: "
                   "section, e.g. configs/tune_head_width.yaml; repeat to layer files")
    u.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    u.add_argument("--overwrite", action="store_true",
                   help="delete the search folder and start again (default: continue it)")
    u.add_argument("--chief", metavar="[HOST:]PORT",
                   help="alone: serve the oracle on PORT for workers; with --worker: the "
                   "chief to get trials from (HOST:PORT)")
    u.add_argument("--worker", metavar="ID", help="run trials for the chief as worker ID; "
                   "restart a killed worker with the same ID to continue its trial")
    u.add_argument("--threads", type=int, help="CPU threads for TensorFlow")

    e = sub.add_parser("evaluate", help="per-head metrics, latency and size of a model")
    e.add_argument("model", metavar="RUN_DIR_OR_MODEL")
    e.add_argument("--data", help="dataset folder (default: the run's data.root)")
    e.add_argument("--split", default="test")
    e.add_argument("--threads", type=int, help="CPU threads (the reference measures 1)")
    e.add_argument("--target-precision", type=float, metavar="P",
                   help="also report recall at the validation threshold reaching precision P")
    e.add_argument("--latency-images", type=int, default=100)

    c = sub.add_parser("compare", help="the reference's results table for evaluated runs")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--markdown", action="store_true", help="print a Markdown table")
    c.add_argument("--plot", metavar="OUT.png", help="also draw train loss, valid loss and "
                   "accuracy per epoch of the runs (a staged run on the same epoch axis)")

    r = sub.add_parser("predict", help="print one JSON object of probabilities per image")
    r.add_argument("model", metavar="MODEL", help=".keras or .tflite file")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--threads", type=int)

    v = sub.add_parser("convert", help="export a .keras model to .tflite, with a parity check")
    v.add_argument("model", metavar="MODEL", help="a .keras file or a run folder (best.keras)")
    v.add_argument("--tflite", action="store_true", required=True,
                   help="convert to TFLite (the only target for now)")
    v.add_argument("--quantize", default="none", choices=["none", "float16", "dynamic", "int8"])
    v.add_argument("--calibration", type=int, default=200, metavar="N",
                   help="training images that calibrate int8 (default 200)")
    v.add_argument("--out", help="output .tflite (default: best.tflite / best.<mode>.tflite)")
    v.add_argument("--data", help="dataset for calibration and parity (default: the run's)")
    v.add_argument("--parity-images", type=int, default=1000, metavar="N",
                   help="validation images compared with the .keras model (default 1000)")

    w = sub.add_parser("weights", help="port pretrained weights into tf-twohead's models")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    wi = wsub.add_parser("import-torchvision",
                         help="a torchvision ShuffleNetV2 .pth -> .weights.h5 (no torch needed)")
    wi.add_argument("file", metavar="FILE.pth", help="a torchvision ShuffleNetV2 state_dict")
    wi.add_argument("--width", type=float, required=True, choices=WIDTHS,
                    help="the width the file was trained with")
    wi.add_argument("--out", metavar="PATH.weights.h5",
                    help="output (default: FILE with .weights.h5 for .pth)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    from tf_twohead import console

    return console.run(args.command, _COMMANDS[args.command], args)


def _data(args) -> int:
    if args.data_command == "tfds":
        from tf_twohead.data.tfds import write_tfds

        result = write_tfds(args.name, args.out, args.label, args.coarse_label, args.size,
                            args.val_fraction, args.limit, args.data_dir, args.seed)
        counts = result["counts"]
        print(f"Wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(f"Its classes{' and coarse groups' if args.coarse_label else ''}: "
              f"{result['config']}; train with e.g. tf-twohead train --config "
              f"configs/combined.yaml --config {result['config']}")
        return 0
    from tf_twohead.data.sources import write_fashion_mnist

    counts = write_fashion_mnist(args.out, args.source, args.size, args.train, args.val,
                                 args.test, args.seed, classes=args.classes)
    print(f"Wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _train(args) -> int:
    from tf_twohead import config, runtime, training

    cfg = config.load_config(args.config, args.overrides)
    runtime.set_threads(args.threads)
    training.train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0


def _tune(args) -> int:
    from tf_twohead import config, runtime
    from tf_twohead.tuning.search import tune

    cfg = config.load_config(args.config, args.overrides)
    runtime.set_threads(args.threads)
    tune(cfg, overwrite=args.overwrite, chief=args.chief, worker=args.worker)
    return 0


def _evaluate(args) -> int:
    from tf_twohead import evaluation, reports, runtime

    runtime.set_threads(args.threads)
    result = evaluation.evaluate(args.model, args.data, args.split, args.threads,
                                 args.target_precision, args.latency_images)
    print(reports.markdown_table(evaluation.head_table(result)))
    print(f"latency_ms={result['latency_ms']:.2f} (threads={args.threads or 'all'}) "
          f"model_bytes={result['model_bytes']}")
    return 0


def _compare(args) -> int:
    from tf_twohead import comparison, reports

    if args.plot:
        print(f"Wrote {reports.plot_runs(comparison.histories(args.runs), args.plot)}")
        if not all(comparison.has_metrics(run) for run in args.runs):
            print("(no results table: evaluate every run first, tf-twohead evaluate RUN)")
            return 0
    table = comparison.compare(args.runs)
    if args.markdown:
        print(reports.markdown_table(table, "{:.3f}"))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _predict(args) -> int:
    from tf_twohead import inference, runtime

    runtime.set_threads(args.threads)
    predictor = inference.Predictor(args.model, threads=args.threads)
    failures = 0
    for path in args.images:
        try:
            print(json.dumps({"path": path, **predictor.predict_file(path)}))
        except OSError as e:
            failures += 1
            print(json.dumps({"path": path, "error": str(e)}))
    return 1 if failures else 0


def _convert(args) -> int:
    from tf_twohead import export, parity

    result = export.to_tflite(args.model, args.quantize, args.calibration, args.out,
                              args.data, args.parity_images)
    print(f"Wrote {result['path']} ({result['bytes']:,} bytes, {args.quantize}); outputs "
          f"{result['metadata']['outputs']}")
    print("\n".join(parity.summary_lines(result["parity"])))
    return 0


def _weights(args) -> int:
    from pathlib import Path

    from tf_twohead import weights

    out = Path(args.out) if args.out else Path(args.file).with_suffix(".weights.h5")
    if not out.name.endswith(".weights.h5"):
        raise ValueError(f"--out must end with .weights.h5 (Keras' weights format). "
                         f"Received: {out}")
    model = weights.import_torchvision(args.file, args.width)  # checks the hash in the name
    weights.save_weights(model, out)
    checked = weights.hash_in_name(args.file)
    print(f"Wrote {out}: {model.name}, {len(model.weights)} weights "
          f"({model.count_params():,} values)"
          + (f"; SHA-256 prefix {checked} checked" if checked else ""))
    print(f"Load it with tf_twohead.shufflenet_v2({args.width}).load_weights({str(out)!r}), "
          f"or train from it with model.pretrained={out}")
    return 0


_COMMANDS = {"data": _data, "train": _train, "tune": _tune, "evaluate": _evaluate,
             "compare": _compare, "predict": _predict, "convert": _convert, "weights": _weights}

if __name__ == "__main__":
    sys.exit(main())
