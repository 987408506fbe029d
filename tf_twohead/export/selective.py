"""Which layers int8 hurts, and int8 with those layers kept in float ("int8_mixed").

TensorFlow's quantization debugger runs the calibrated model once with every quantized
op beside its float twin and reports, per layer, the root-mean-square difference in
units of the layer's quantization step (`rmse/scale`). Pure rounding gives 1/sqrt(12) =
0.29; TensorFlow's guide to the debugger treats a layer above 0.7 as one that int8 hurts
(a clipped range, an outlier channel). "int8_mixed" keeps exactly those layers in
float32 (the converter's `denylisted_nodes`, with quantize/dequantize around them) and
every other layer per-channel int8. When no layer stands out, as with ShuffleNetV2 on
our data (the worst, `conv1`, is at 0.31), the loss int8 leaves is spread over the whole
network and "int8_mixed" is "int8" itself; the report says so.

Example:

>>> flatbuffer, report = convert_mixed(converter)  # a calibrated "int8" converter
>>> report.head(3)[["layer", "rmse_scale", "float"]]
"""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np

from tf_twohead.core.quiet import native_stderr_silenced

FLOOR = 1 / math.sqrt(12)  # rmse/scale of rounding alone
STANDS_OUT = 0.7  # TensorFlow's quantization debugger guide
DEBUG_IMAGES = 50  # calibration images the debugger runs (the error is a mean over them)

# A fused op's tensor name joins the names of the ops folded into it; the layer is the
# one that owns the kernel (Keras' name scope, with a "_1" uniquifying suffix).
_LAYER = re.compile(
    r"(?:^|/)([^/;]+?)(?:_\d+)?/(?:convolution|depthwise|MatMul|BiasAdd|Pad)(?:;|$)")


def convert_mixed(converter, images: np.ndarray, per_tensor: bool = False):
    """Calibrate once, measure every layer's quantization error, and quantize with the
    layers above `STANDS_OUT` kept in float.

    Args:
        converter: `tf.lite.TFLiteConverter` set up for full-integer int8 (uint8 input,
            representative dataset), as `serving.convert_saved_model` makes it.
        images: uint8 array `(N, S, S, 3)`. The first `DEBUG_IMAGES` are run by the debugger.
        per_tensor: bool. One weight scale per tensor instead of per channel.

    Returns:
        `(flatbuffer bytes, pandas DataFrame)`: the model, and one row per quantized layer
        (`layer`, `op`, `rmse_scale`, `max_abs_error`, `float`), worst first.
    """
    import tensorflow as tf

    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # calibrated float model, quantized below
    with native_stderr_silenced():
        calibrated = converter.convert()
    report = layer_errors(calibrated, images[:DEBUG_IMAGES], per_tensor)
    keep = list(report.loc[report["float"], "tensor"])
    with native_stderr_silenced():
        flatbuffer = _quantize(calibrated, per_tensor, keep, tf)
    return flatbuffer, report.drop(columns="tensor")


def layer_errors(calibrated: bytes, images: np.ndarray, per_tensor: bool):
    """One row per quantized op of a calibrated model: its error in quantization steps."""
    import pandas as pd
    import tensorflow as tf

    with warnings.catch_warnings(), native_stderr_silenced():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        debug_model = _quantize(calibrated, per_tensor, None, tf, verify=True)
        run = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model,
            debug_dataset=lambda: ([np.asarray(image, np.uint8)[None]] for image in images))
        run.run()
        dump = io.StringIO()
        run.layer_statistics_dump(dump)  # the documented CSV: op_name, tensor_name, scale...
    stats = pd.read_csv(io.StringIO(dump.getvalue()))
    table = pd.DataFrame({
        "layer": [layer_name(t, op) for t, op in zip(stats["tensor_name"], stats["op_name"])],
        "op": stats["op_name"],
        "rmse_scale": np.sqrt(stats["mean_squared_error"]) / stats["scale"],
        "max_abs_error": stats["max_abs_error"], "tensor": stats["tensor_name"]})
    table = table.sort_values("rmse_scale", ascending=False, ignore_index=True)
    table["float"] = table["rmse_scale"] > STANDS_OUT
    return table


def layer_name(tensor: str, op: str = "") -> str:
    """The Keras layer a fused op's output tensor belongs to; otherwise the op and the
    tensor (a head's sigmoid: `logistic (StatefulPartitionedCall:1)`)."""
    found = _LAYER.search(tensor)
    if found:
        return found.group(1)
    first = tensor.split(";")[0]
    return f"{op.lower()} ({first})" if op else first


def summary(report) -> str:
    """One line: the worst layers, and which (if any) stay in float."""
    worst = ", ".join(f"{r.layer} {r.rmse_scale:.2f}" for r in report.head(3).itertuples())
    kept = list(report.loc[report["float"], "layer"])
    verdict = (f"kept in float32: {', '.join(kept)}" if kept else
               f"no layer above {STANDS_OUT}: the loss is spread over the network, so "
               "int8_mixed is int8")
    return (f"int8 error per layer, in quantization steps (rounding alone: {FLOOR:.2f}): "
            f"worst {worst}; {verdict}.")


def _quantize(calibrated: bytes, per_tensor: bool, keep_float, tf, verify: bool = False):
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(
        calibrated, disable_per_channel=per_tensor, input_data_type=tf.uint8,
        output_data_type=tf.float32, enable_numeric_verify=verify,
        denylisted_nodes=keep_float or None)
