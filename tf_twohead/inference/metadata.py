"""Model metadata that travels inside a `.tflite` (or `.onnx`) file, readable without
TensorFlow.

The metadata is a JSON document stored in a ZIP archive appended to the flatbuffer,
the same packaging TFLite's own metadata tools use for associated files: LiteRT ignores
the trailing bytes, and any ZIP reader (Python's `zipfile`, `unzip -p`, Java's
`ZipInputStream` on a phone) finds the JSON. An `.onnx` export keeps the same JSON in
the model's own `metadata_props` under the same key (ONNX Runtime's
`get_modelmeta().custom_metadata_map`). `tf-twohead convert` also writes a copy beside the
model as `<model>.metadata.json`.

Example:

>>> read("best.tflite")["heads"]["main"]
{'positive_ids': [2], 'positive_names': ['screen'], 'threshold': 0.5}
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from tf_twohead.core.decisions import default_threshold
from tf_twohead.core.defaults import IMAGENET_MEAN, IMAGENET_STD
from tf_twohead.core.errors import ModelFileError
from tf_twohead.core.fileio import sha256
from tf_twohead.core.version import __version__

METADATA_NAME = "tf_twohead_metadata.json"
MAX_METADATA_BYTES = 1 << 20
FORMAT = "tf-twohead/tflite-metadata"
FORMAT_VERSION = 1


def describe(kind: str, output_names: list[str], heads: dict[str, list[int]],
             class_names: list[str], img_size: int, quantization: str,
             source: str | os.PathLike, thresholds: dict[str, float] | None = None,
             normalization: tuple | None = None) -> dict:
    """The metadata of an exported model.

    Args:
        kind: str. "two_head" or "softmax".
        output_names: list of str. Signature outputs of the model.
        heads: dict. Head name -> positive class ids.
        class_names: list of str. Names of class ids.
        img_size: int. Input side in pixels.
        quantization: str. One of `core.defaults.QUANTIZATIONS`.
        source: str. The `.keras` file the model was converted from (hashed).
        thresholds: dict or None. Per-head decision thresholds; sigmoid heads default to
            `core.decisions.DEFAULT_THRESHOLD`, softmax heads use argmax (threshold null).
        normalization: `(mean, std)` the model normalises [0, 1] pixels with inside
            (`models.input_normalization`); defaults to ImageNet's.
    """
    mean, std = normalization or (IMAGENET_MEAN, IMAGENET_STD)

    thresholds = thresholds or {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "kind": kind,
        "signature": "serving_default",
        "outputs": list(output_names),
        "heads": {
            name: {
                "positive_ids": list(ids),
                "positive_names": [class_names[i] for i in ids],
                "threshold": thresholds.get(name, default_threshold(kind)),
            }
            for name, ids in heads.items()
        },
        "class_names": list(class_names),
        "input": {
            "name": "image",
            "shape": [None, img_size, img_size, 3],
            "dtype": "uint8",
            "color": "RGB, EXIF orientation applied, resized to a square (bilinear)",
            "normalization": "inside the model: (x / 255 - mean) / std",
            "mean": list(mean),
            "std": list(std),
        },
        "quantization": quantization,
        "source_model": {"file": Path(source).name, "sha256": sha256(source)},
    }


def embed(tflite_path: str | os.PathLike, metadata: dict) -> Path:
    """Append the metadata archive to a `.tflite` file (LiteRT ignores trailing bytes)."""
    path = Path(tflite_path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_NAME, json.dumps(metadata, indent=2))
    return path


def read(tflite_path: str | os.PathLike) -> dict | None:
    """The embedded metadata of a `.tflite` file, checked, or None when it has none.

    Raises:
        ModelFileError: the metadata is there but is not valid JSON of the expected shape.
    """
    try:
        with zipfile.ZipFile(tflite_path) as archive:
            info = archive.getinfo(METADATA_NAME)
            if info.file_size > MAX_METADATA_BYTES:
                raise ModelFileError(f"{tflite_path}: its metadata unpacks to "
                                     f"{info.file_size:,} bytes; it is not tf-twohead's")
            text = archive.read(METADATA_NAME)
    except (zipfile.BadZipFile, KeyError):
        return None
    except (zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as e:
        raise _unreadable(tflite_path, e) from None
    return parse(text, tflite_path)


def parse(text: str | bytes, where) -> dict:
    """The metadata JSON `text` of the model file `where`, bounded and checked (the ONNX
    export keeps the same document in its `metadata_props`)."""
    if len(text) > MAX_METADATA_BYTES:
        raise ModelFileError(f"{where}: its metadata holds {len(text):,} bytes; it is not "
                             "tf-twohead's")
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # nested too deep
        raise _unreadable(where, e) from None
    check(meta, where)
    return meta


def _unreadable(where, e: Exception) -> ModelFileError:
    return ModelFileError(f"{where}: its embedded metadata ({METADATA_NAME}) is not "
                          f"readable JSON ({type(e).__name__}: {str(e)[:120]}). Export it "
                          "again with tf-twohead convert.")


def check(meta, where) -> None:
    """Raise `ModelFileError` unless `meta` has the fields `Predictor` relies on."""
    try:
        names = meta["class_names"]
        ok = isinstance(names, list) and all(isinstance(n, str) for n in names)
        for head in meta["heads"].values():
            ids = head["positive_ids"]
            ok &= isinstance(ids, list) and all(type(i) is int and 0 <= i < len(names)
                                                for i in ids)
            ok &= head["threshold"] is None or isinstance(head["threshold"], (int, float))
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ModelFileError(f"{where}: its embedded metadata lacks the class names or head "
                             "definitions tf-twohead writes. Export it again with tf-twohead "
                             "convert.")
