"""The `tf-twohead` command line: every command, option, choice and default.

Importing it loads nothing heavy (no TensorFlow), so `--help`, `--version` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse

from tf_twohead.core.defaults import BENCHMARK_FORMATS, CALIBRATED, QUANTIZATIONS, WIDTHS
from tf_twohead.core.version import __version__

DESCRIPTION = """\
Small, fast multi-head image classifiers (ShuffleNetV2 + named sigmoid heads) for
Keras 3 / TensorFlow, exported to TFLite for phones.

Typical first hour:
  tf-twohead data fashion-mnist demo_data/fm          # an offline demo dataset
  tf-twohead train --config two_head data.root=demo_data/fm data.img_size=64
  tf-twohead evaluate saved_models/two_head
  tf-twohead convert saved_models/two_head --quantize dynamic
  tf-twohead predict saved_models/two_head photos/

Configs: the shipped presets by name (tf-twohead config show two_head), or YAML files.
"""
SPLITS = ("train", "val", "test")


FORMATS = ("tflite", "onnx")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown on every option, descriptions kept as written."""


def build() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tf-twohead", description=DESCRIPTION, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"tf-twohead {__version__}")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show TensorFlow's, Keras' and LiteRT's own messages too")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text, **kwargs):
        return sub.add_parser(name, help=help_text, description=help_text,
                              formatter_class=_Help, **kwargs)

    _data(command("data", "write a dataset in the reference layout (class folders + CSVs)"))
    _train(command("train", "train the model a config describes into saved_models/<exp>/"))
    _tune(command("tune", "search config keys (head widths first) with Keras Tuner: trials "
                  "table, Pareto fronts of accuracy against size and latency"))
    e = command("evaluate", "per-head metrics, plots, an error gallery, latency and size")
    e.add_argument("model", metavar="RUN_OR_MODEL",
                   help="a run folder (its best.keras), a .keras, .tflite or .onnx file")
    e.add_argument("--data", metavar="DIR", help="dataset folder (default: the run's data.root)")
    e.add_argument("--split", default="test", choices=SPLITS, help="which split to evaluate")
    e.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads (default: all; the reference measures latency with 1)")
    e.add_argument("--target-precision", type=float, metavar="P",
                   help="also report recall at the validation threshold reaching precision P")
    e.add_argument("--latency-images", type=int, default=100, metavar="N",
                   help="images timed one by one for latency_ms")
    c = command("compare", "the results table of evaluated runs, and their training curves")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run folders, model or metrics files")
    c.add_argument("--markdown", action="store_true", help="print a Markdown table")
    c.add_argument("--plot", metavar="OUT.png", help="also draw train loss, valid loss and "
                   "F1/accuracy per epoch of the runs")
    _predict(command("predict", "decisions and probabilities for images, with the model's "
                     "thresholds"))
    _convert(command("convert", "export a .keras model to .tflite or .onnx, checking parity"))
    _benchmark(command("benchmark", "every export format side by side: size, latency and "
                       "accuracy on a split, flips against float32"))
    _weights(command("weights", "port pretrained weights into tf-twohead's models"))
    _config(command("config", "list, print or copy the shipped config presets"))
    k = command("clean", "list and remove what runs leave on disk (old runs, decode caches, "
                "trial checkpoints)")
    k.add_argument("runs", nargs="*", metavar="RUN", help="run or search folders to remove")
    k.add_argument("--caches", action="store_true",
                   help="decode caches whose CSV or images changed or are gone")
    k.add_argument("--all-caches", action="store_true", help="every decode cache (rebuilt "
                   "on demand)")
    k.add_argument("--trials", action="store_true", help="search trials' last.keras and "
                   "Keras Tuner checkpoints (best.keras stays)")
    k.add_argument("--output-dir", default="saved_models", metavar="DIR",
                   help="where runs, searches and caches are")
    k.add_argument("--cache-dir", action="append", default=[], metavar="DIR",
                   help="also a data.cache_dir of runs elsewhere (the ones under "
                        "--output-dir are found from their config.yaml)")
    k.add_argument("--dry-run", action="store_true", help="list only, remove nothing")
    return p


def _data(d) -> None:
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="SOURCE")
    f = dsub.add_parser("fashion-mnist", formatter_class=_Help,
                        help="Fashion-MNIST from its IDX files (offline)")
    f.add_argument("out", help="output dataset folder")
    f.add_argument("--source", metavar="DIR", help="folder with the IDX files (default: "
                   "/usr/share/datasets/fashion-mnist, then Keras' download)")
    f.add_argument("--size", type=int, default=64, metavar="PX", help="image side in pixels")
    f.add_argument("--train", type=int, default=6000, metavar="N", help="training images")
    f.add_argument("--val", type=int, default=1000, metavar="N", help="validation images")
    f.add_argument("--test", type=int, default=2000, metavar="N", help="test images")
    f.add_argument("--seed", type=int, default=0, help="seed of the sample")
    f.add_argument("--classes", type=int, default=3, choices=[3, 10],
                   help="3: the reference's classes; 10: Fashion-MNIST's own")
    f.add_argument("--overwrite", action="store_true",
                   help="write into a folder that is not empty (its old images stay)")
    a = dsub.add_parser("audit", formatter_class=_Help, help="find leaked near-duplicates, "
                        "label conflicts and likely label errors before training")
    a.add_argument("root", help="dataset folder with train.csv, val.csv, test.csv")
    a.add_argument("--config", action="append", metavar="FILE_OR_NAME",
                   help="config for class names, heads and the recipe (default: two_head)")
    a.add_argument("--out", metavar="DIR", help="report folder (default: ROOT/audit)")
    a.add_argument("--threshold", type=int, default=8, metavar="BITS",
                   help="near-duplicate candidates: pHash Hamming distance, of 64 bits")
    a.add_argument("--min-similarity", type=float, default=0.97, metavar="R",
                   help="the pixel check a candidate must pass to be a copy (detail "
                   "correlation after alignment; -1: keep every pHash candidate)")
    a.add_argument("--per-image", type=int, default=10, metavar="N",
                   help="candidate pairs checked per image, its closest (more: better "
                   "recall where look-alikes crowd, slower)")
    a.add_argument("--folds", type=int, default=0, metavar="K", help="train K small models "
                   "on the other folds for out-of-sample label-error scores (0: skip)")
    a.add_argument("--epochs", type=int, default=3, metavar="E", help="epochs per fold model")
    a.add_argument("--img-size", type=int, default=64, metavar="PX",
                   help="image side for hashing and the fold models")
    a.add_argument("--model", metavar="RUN", help="score labels with this run or model "
                   "instead of folds (in-sample for its training split)")
    a.add_argument("--write-clean", metavar="DIR", help="write a copy of the dataset "
                   "without the leaked rows (originals untouched)")
    a.add_argument("--drop-label-issues", action="store_true",
                   help="with --write-clean: also leave out rows flagged as label errors")
    a.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    g = dsub.add_parser("tfds", formatter_class=_Help, help="any TFDS image-classification "
                        "dataset, with an optional coarse label (downloads when online)")
    g.add_argument("name", help="TFDS name, e.g. oxford_iiit_pet, cifar100")
    g.add_argument("out", help="output dataset folder")
    g.add_argument("--label", default="label", help="the fine label feature")
    g.add_argument("--coarse-label", metavar="KEY",
                   help="a coarse label feature (species, coarse_label) -> data.coarse")
    g.add_argument("--size", type=int, metavar="PX",
                   help="resize images to PX x PX (default: keep their size)")
    g.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of the training split held out as val")
    g.add_argument("--limit", type=int, metavar="N", help="at most N images per split")
    g.add_argument("--data-dir", metavar="DIR", help="TFDS data_dir (default: TFDS' own)")
    g.add_argument("--seed", type=int, default=0, help="seed of the train/val split")


def _configs(parser, what: str) -> None:
    parser.add_argument("--config", required=True, action="append", metavar="FILE_OR_NAME",
                        help=f"YAML file or preset name ({what}); repeat it to layer files "
                        "(later ones win)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.epochs=3 data.root=DIR")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for TensorFlow (default: all)")


def _train(t) -> None:
    _configs(t, "two_head, three_class, combined, ...")
    t.add_argument("--resume", action="store_true",
                   help="continue an interrupted run after its last finished epoch")
    t.add_argument("--overwrite", action="store_true", help="start a finished run again")
    g = t.add_argument_group("data-parallel processes (train.distribution=data_parallel; "
                             "or KERAS_DISTRIBUTION_NUM_PROCESSES, _PROCESS_ID, _JOB_ADDRESSES)")
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the group")
    g.add_argument("--process-id", type=int, metavar="I",
                   help="this process: 0..N-1 (0 writes the run folder)")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="process 0's host and a free port, the same for every process")


def _tune(u) -> None:
    _configs(u, "with a tune: section, e.g. tune_head_width")
    u.add_argument("--overwrite", action="store_true",
                   help="empty the search folder and start again (default: continue it)")
    u.add_argument("--chief", metavar="[HOST:]PORT", help="alone: serve the oracle for "
                   "workers (a bare PORT binds 127.0.0.1; 0.0.0.0:PORT every interface, "
                   "unauthenticated); with --worker: the chief's HOST:PORT")
    u.add_argument("--worker", metavar="ID", help="run trials for the chief as worker ID; "
                   "restart a killed worker with the same ID to continue its trial")


def _predict(r) -> None:
    r.add_argument("model", metavar="MODEL", help="a run folder (its best.keras), a .keras "
                   "or a .tflite file (.tflite runs with LiteRT alone, without TensorFlow)")
    r.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders (searched recursively) or glob patterns")
    r.add_argument("--save", metavar="FILE.csv", help="also write one row per image")
    r.add_argument("--json", action="store_true", help="print one JSON object per image")
    r.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all)")


def _convert(v) -> None:
    v.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder (its best.keras) or "
                   "a .keras file")
    v.add_argument("--format", default="tflite", choices=FORMATS,
                   help="tflite (LiteRT), or onnx (ONNX Runtime; float32 only)")
    v.add_argument("--tflite", action="store_true", help=argparse.SUPPRESS)  # older spelling
    v.add_argument("--quantize", default="none", choices=QUANTIZATIONS,
                   help="none: float32; float16: half-size weights; dynamic: int8 weights "
                   "(smallest for ShuffleNet x0.5); int8: integer weights and activations, "
                   "a scale per channel; int8_per_tensor: one scale per tensor (smaller); "
                   "int8_mixed: int8 with the layers it hurts kept in float32 (their errors "
                   "in <file>.layers.csv); int16x8: int16 activations, int8 weights (closer "
                   "to float32)")
    v.add_argument("--calibration", type=int, default=200, metavar="N",
                   help=f"training images that calibrate {', '.join(CALIBRATED)}")
    v.add_argument("--out", metavar="FILE",
                   help="output file (default: <run>/exports/best[.<mode>].tflite or "
                   "best.onnx)")
    v.add_argument("--data", metavar="DIR", help="dataset for calibration and parity "
                   "(default: the run's)")
    v.add_argument("--parity-images", type=int, default=1000, metavar="N",
                   help="validation images compared with the .keras model")


def _benchmark(b) -> None:
    b.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder (its best.keras) or "
                   "a .keras file")
    b.add_argument("--formats", default=",".join(BENCHMARK_FORMATS), metavar="F,F,...",
                   help="keras, onnx and TFLite quantizations (" + ", ".join(QUANTIZATIONS)
                   + ")")
    b.add_argument("--split", default="test", choices=SPLITS, help="the split scored")
    b.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of every runtime (a phone's big core: 1)")
    b.add_argument("--data", metavar="DIR", help="dataset folder (default: the run's)")
    b.add_argument("--calibration", type=int, default=200, metavar="N",
                   help=f"training images that calibrate {', '.join(CALIBRATED)}")
    b.add_argument("--target-precision", type=float, default=0.95, metavar="P",
                   help="recall at the validation threshold that reaches this precision")
    b.add_argument("--latency-images", type=int, default=50, metavar="N",
                   help="images timed one by one, model only and file -> decisions")
    b.add_argument("--parity-images", type=int, default=1000, metavar="N",
                   help="validation images each new export's parity check compares")


def _weights(w) -> None:
    wsub = w.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wi = wsub.add_parser("import-torchvision", formatter_class=_Help,
                         help="a torchvision ShuffleNetV2 .pth -> .weights.h5 (no torch needed)")
    wi.add_argument("file", metavar="FILE.pth", help="a torchvision ShuffleNetV2 state_dict")
    wi.add_argument("--width", type=float, choices=WIDTHS,
                    help="the width the file was trained with (default: read from its shapes)")
    wi.add_argument("--out", metavar="PATH.weights.h5",
                    help="output (default: FILE with .weights.h5 for .pth)")


def _config(c) -> None:
    csub = c.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    csub.add_parser("list", formatter_class=_Help, help="the shipped presets")
    s = csub.add_parser("show", formatter_class=_Help, help="print a preset with its comments")
    s.add_argument("name", help="preset name, e.g. two_head")
    k = csub.add_parser("copy", formatter_class=_Help, help="copy a preset to a file to edit")
    k.add_argument("name", help="preset name, e.g. two_head")
    k.add_argument("file", help="where to write it, e.g. my_run.yaml")
