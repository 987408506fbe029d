"""Convert a `.keras` model to a `.tflite` with named outputs, quantization, metadata
and an automatic parity check.

The serving graph and the converter call live in `serving.py`; this module runs them
in a temporary folder, embeds the metadata, checks parity against the `.keras` model and
only then gives the file its name.

Example:

>>> result = to_tflite("saved_models/two_head/best.keras", quantize="dynamic")
>>> result["path"], result["parity"]["passed"]
('saved_models/two_head/best.dynamic.tflite', True)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tf_twohead.core.api import public
from tf_twohead.core.defaults import CALIBRATED, QUANTIZATIONS
from tf_twohead.core.errors import ExportError
from tf_twohead.core.fileio import atomic_write_text
from tf_twohead.core.run_folder import export_path, resolve_model
from tf_twohead.export import selective
from tf_twohead.export.parity import check_candidate, keep_checked, parity_samples
from tf_twohead.export.serving import convert_saved_model, write_serving_model
from tf_twohead.inference import metadata as metadata_lib
from tf_twohead.inference.predictor import Predictor
from tf_twohead.models import input_normalization


def size_note(path: Path, quantize: str) -> str | None:
    """Why an int8 file can be larger than the dynamic-range one beside it."""
    dynamic = path.with_name(path.name.replace(".int8.", ".dynamic."))
    if quantize != "int8" or not dynamic.is_file():
        return None
    int8, dyn = path.stat().st_size, dynamic.stat().st_size
    if int8 <= dyn:
        return f"int8 is {(1 - int8 / dyn):.0%} smaller than {dynamic.name}."
    return (f"Note: int8 ({int8 / 1024:,.0f} KiB) is larger than {dynamic.name} "
            f"({dyn / 1024:,.0f} KiB). Both store the big weights as int8; full-integer "
            "quantization also quantizes the biases and small kernels and stores a float32 "
            "scale and an int64 zero point per channel for each of them (TFLite's format), "
            "which at ShuffleNetV2 x0.5's size outweighs the float32 tensors it saves. int8 "
            "is the faster file on CPU (XNNPACK) and the one integer accelerators run; "
            "--quantize int8_per_tensor keeps one scale per tensor (smaller), and "
            "`tf-twohead benchmark` measures what each costs in accuracy.")


@public
def to_tflite(model_path: str | Path, quantize: str = "none", calibration: int = 200,
              out: str | Path | None = None, data_root: str | Path | None = None,
              parity_images: int = 1000, progress: bool = True) -> dict:
    """Convert, embed metadata, check parity; keep the file only under an honest name.

    Args:
        model_path: str. A run folder (its `best.keras`) or a `.keras` file.
        quantize: str. One of `core.defaults.QUANTIZATIONS`: "none", "float16",
            "dynamic", "int8", "int8_per_tensor" or "int16x8".
        calibration: int. Training images (a random sample) that calibrate the
            activation ranges of "int8", "int8_per_tensor" and "int16x8".
        out: str or None. Output `.tflite`; defaults to `core.run_folder.export_path`.
        data_root: str or None. Dataset for calibration and parity; defaults to the
            run's `data.root` (from `config.yaml` beside the model).
        parity_images: int. Validation images used by the parity check (all of them
            when the split is smaller). With few positives a single flipped decision
            moves F1 by several points, so keep this large.

    Returns:
        `{"path", "bytes", "metadata", "parity"}`.

    Raises:
        ParityError: outside the bounds; the file is kept as `<name>.parity-failed.tflite`.
    """
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}. Received: {quantize!r}")
    model_path = resolve_model(model_path)
    if model_path.suffix != ".keras":
        raise ExportError(f"convert reads a .keras model. Received: {model_path}")
    reference = Predictor(model_path)
    val, train = parity_samples(reference, data_root,
                                calibration if quantize in CALIBRATED else 0,
                                parity_images, progress)
    out = Path(out) if out else export_path(model_path, quantize)
    meta = metadata_lib.describe(reference.kind, reference.output_names, reference.heads,
                                 reference.class_names, reference.img_size, quantize,
                                 model_path,
                                 normalization=input_normalization(reference.model))
    meta["params"] = reference.runner.params
    # Everything is built and checked in a temporary folder (removed on any exit, Ctrl-C
    # and SIGTERM included): nothing gets a .tflite name beside the model before its
    # parity check has passed.
    say = print if progress else (lambda *a, **k: None)
    with tempfile.TemporaryDirectory(prefix="tf_twohead_convert_") as tmp:
        say(f"[1/3] {model_path}: writing the serving signature (uint8 image -> "
            f"{', '.join(reference.output_names)})", flush=True)
        saved = write_serving_model(reference.model, Path(tmp) / "saved_model", quantize)
        say(f"[2/3] converting to TFLite ({quantize})", flush=True)
        candidate_path = Path(tmp) / "candidate.tflite"
        details = {}
        candidate_path.write_bytes(convert_saved_model(saved, quantize, train, details))
        if "layers" in details:
            meta["float_layers"] = list(details["layers"].loc[details["layers"]["float"],
                                                              "layer"])
            say("      " + selective.summary(details["layers"]), flush=True)
        metadata_lib.embed(candidate_path, meta)
        say(f"[3/3] checking parity on {len(val[0])} validation images", flush=True)
        report = check_candidate(reference, Predictor(candidate_path), val, quantize)
        result = keep_checked(candidate_path, out, report, meta,
                              "Try a milder --quantize mode.")
        if "layers" in details:  # beside the file: every layer's error, worst first
            result["layers"] = str(atomic_write_text(
                out.with_suffix(".layers.csv"),
                details["layers"].to_csv(index=False, float_format="%.4g")))
        return result
