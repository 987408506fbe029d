"""Convert a `.keras` model to an `.onnx` with named outputs, metadata and the parity
check, for ONNX Runtime.

Route: Keras' own `model.export(format="onnx")`, which on the TensorFlow backend traces
the model's call at a fixed input signature and hands it to tf2onnx (and on JAX goes
through jax2onnx): the same graph the `.tflite` is made from, uint8 `image` (1, S, S, 3)
in, one output per head by name. tf2onnx alone (`from_function` on the serving
SavedModel's signature) fails on TF 2.21's wrapped signatures; Keras' route patches
tf2onnx for NumPy 2 and is kept working by the Keras team. float32 only: ONNX Runtime's
quantization tools are another toolchain, and the TFLite modes cover phones.

Example:

>>> result = to_onnx("saved_models/two_head")
>>> result["path"], result["parity"]["passed"]
('saved_models/two_head/exports/best.onnx', True)
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from tf_twohead.core.api import public
from tf_twohead.core.errors import ExportError
from tf_twohead.core.quiet import native_stderr_silenced
from tf_twohead.core.run_folder import export_path, resolve_model
from tf_twohead.export.parity import check_candidate, keep_checked, parity_samples
from tf_twohead.inference import metadata as metadata_lib
from tf_twohead.inference.onnx_runner import INSTALL
from tf_twohead.inference.predictor import Predictor
from tf_twohead.models import input_normalization

OPSET = 17  # ONNX Runtime 1.16 and later run it; tf2onnx 1.17 writes it


def missing_converter() -> str | None:
    """Why an ONNX export cannot be made here (a package missing), or None."""
    for module in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            return f"needs {module}: {INSTALL}"
    return None


@public
def to_onnx(model_path: str | Path, out: str | Path | None = None,
            data_root: str | Path | None = None, parity_images: int = 1000,
            progress: bool = True) -> dict:
    """Export, embed metadata, check parity (max |dp| <= 1e-4, as float32 TFLite); keep
    the file only under an honest name.

    Args:
        model_path: str. A run folder (its `best.keras`) or a `.keras` file.
        out: str or None. Output `.onnx`; defaults to `<run>/exports/best.onnx`.
        data_root: str or None. Dataset for the parity check; defaults to the run's.
        parity_images: int. Validation images the parity check compares.

    Returns:
        `{"path", "bytes", "metadata", "parity"}`.

    Raises:
        ExportError: tf2onnx, onnx or ONNX Runtime missing, or the export failed.
        ParityError: outside the bound; the file is kept as `<name>.parity-failed.onnx`.
    """
    missing = missing_converter()
    if missing:
        raise ExportError(f"ONNX export {missing}")
    import onnx
    import tensorflow as tf

    model_path = resolve_model(model_path)
    if model_path.suffix != ".keras":
        raise ExportError(f"convert reads a .keras model. Received: {model_path}")
    reference = Predictor(model_path)
    val, _ = parity_samples(reference, data_root, 0, parity_images, progress)
    out = Path(out) if out else export_path(model_path, "none", "onnx")
    meta = metadata_lib.describe(reference.kind, reference.output_names, reference.heads,
                                 reference.class_names, reference.img_size, "none",
                                 model_path,
                                 normalization=input_normalization(reference.model))
    meta["params"] = reference.runner.params
    size = reference.img_size
    say = print if progress else (lambda *a, **k: None)
    with tempfile.TemporaryDirectory(prefix="tf_twohead_convert_") as tmp:
        say(f"[1/2] {model_path}: exporting to ONNX (opset {OPSET}; uint8 image -> "
            f"{', '.join(reference.output_names)})", flush=True)
        candidate = Path(tmp) / "candidate.onnx"
        spec = tf.TensorSpec((1, size, size, 3), tf.uint8, name="image")
        try:
            with warnings.catch_warnings(), native_stderr_silenced():
                warnings.simplefilter("ignore")  # tf2onnx's NumPy and TF deprecations
                reference.model.export(str(candidate), format="onnx", verbose=False,
                                       input_signature=[spec], opset_version=OPSET)
        except Exception as e:  # tf2onnx raises bare exceptions naming the op
            raise ExportError(f"ONNX export of {model_path} failed: "
                              f"{' '.join(str(e).split())[:300]}") from None
        proto = onnx.load(str(candidate))
        entry = proto.metadata_props.add()
        entry.key, entry.value = metadata_lib.METADATA_NAME, json.dumps(meta)
        onnx.save(proto, str(candidate))
        say(f"[2/2] checking parity on {len(val[0])} validation images", flush=True)
        report = check_candidate(reference, Predictor(candidate), val, "none")
        return keep_checked(candidate, out, report, meta)
