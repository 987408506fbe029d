"""The serving SavedModel a `.tflite` is converted from, and the conversion itself.

Route: Keras' `ExportArchive` writes a SavedModel whose `serving_default` signature
takes raw RGB uint8 `image` and returns a dict keyed by head name (`main`, `aux`, ...;
`probs` for the softmax baseline); `TFLiteConverter.from_saved_model` converts that
signature with builtin ops only, so LiteRT's `get_signature_runner()` returns outputs
by name. (`from_keras_model`, and a plain `tf.Module` around a Keras 3 model, keep
the weights as resource variables that LiteRT reads as uninitialised: NaN outputs.)

Calibrated models ("int8", "int8_per_tensor", "int8_mixed", "int16x8") get their own
serving graph.
The model's normalisation `(x / 255 - mean) / std` becomes a 1x1 depthwise convolution
on a float32 input that the converter quantizes itself: the `.tflite` still takes raw
uint8 pixels (input scale 1, zero point 0, checked), and the normalisation runs as one
int8 depthwise conv that XNNPACK executes. Left as Keras' cast + per-channel multiply +
add, the converter quantizes the uint8 input after a float cast and runs the int8
multiply and add on all S x S x 3 values outside XNNPACK: at 256 px, 2.6 ms a call
instead of 1.8 ms (bench/anchors.py). "int16x8" keeps that float32 input (LiteRT's 16x8
kernels take int16, not uint8, pixels): its runner casts the pixels to float32.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tf_twohead.core.defaults import CALIBRATED, INT8_INPUT, QUANTIZATIONS
from tf_twohead.core.errors import ExportError
from tf_twohead.core.quiet import native_stderr_silenced
from tf_twohead.export.selective import convert_mixed
from tf_twohead.models.heads import NORMALIZE, normalization_affine


def write_serving_model(model, directory: str | Path, quantize: str = "none") -> Path:
    """Write a SavedModel whose `serving_default` maps an `image` `(1, S, S, 3)` to
    outputs named after the heads: uint8 pixels, or for `quantize="int8"` the same
    pixels as float32 (the converter makes the input uint8 again).

    Batch 1, as on a phone: static shapes let the converter fold the shape arithmetic
    of every channel shuffle (96 SHAPE/PACK/SLICE ops at x0.5).
    """
    import keras
    import tensorflow as tf

    size = int(model.inputs[0].shape[1])
    archive = keras.export.ExportArchive()
    archive.track(model)
    if quantize in CALIBRATED:
        body, normalize = _integer_friendly(model)
        archive.track(normalize)
        archive.add_endpoint(
            "serving_default", lambda image: body(normalize(image), training=False),
            input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="image")])
    else:
        archive.add_endpoint(
            "serving_default", lambda image: model(image, training=False),
            input_signature=[tf.TensorSpec((1, size, size, 3), tf.uint8, name="image")])
    with native_stderr_silenced():
        archive.write_out(str(directory), verbose=False)
    return Path(directory)


def _integer_friendly(model):
    """The model after its normalisation layer, and that layer as a 1x1 depthwise conv."""
    import keras

    scale, offset = normalization_affine(model, "float32")
    normalize = keras.layers.DepthwiseConv2D(1, use_bias=True, name=f"{NORMALIZE}_int8")
    normalize.build((None, None, None, 3))
    normalize.set_weights([scale.reshape(1, 1, 3, 1), offset])
    outputs = dict(zip(model.output_names, model.outputs))
    body = keras.Model(model.get_layer(NORMALIZE).output, outputs, name=f"{model.name}_body")
    return body, normalize


def convert_saved_model(directory: str | Path, quantize: str = "none",
                        calibration_images: np.ndarray | None = None,
                        details: dict | None = None) -> bytes:
    """Convert a serving SavedModel to TFLite flatbuffer bytes, builtin ops only.

    Args:
        directory: str. SavedModel from `write_serving_model` (with the same `quantize`).
        quantize: str. "none", "float16" (weights), "dynamic" (dynamic-range int8
            weights), "int8" (full integer, a weight scale per output channel; uint8
            input, float outputs), "int8_per_tensor" (the same, one scale per tensor) or
            "int16x8" (int16 activations, int8 weights; float32 input and outputs), or
            "int8_mixed" (int8 with the layers int8 hurts kept in float32: `selective`).
        calibration_images: uint8 array `(N, S, S, 3)`. Representative data for the
            calibrated modes.
        details: dict or None. For "int8_mixed", receives `"layers"`: the per-layer
            error table (`selective.layer_errors`).

    Raises:
        ExportError: the model needs ops outside TFLite's builtins (named), an unknown
            quantization mode, or an int8 input that would not take raw pixels.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}. Received: {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(directory), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize in CALIBRATED:
        if calibration_images is None or len(calibration_images) == 0:
            raise ExportError(f"{quantize} quantization needs calibration images "
                              "(--calibration N).")
        converter.representative_dataset = _representative(calibration_images)
    if quantize in INT8_INPUT:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        # The converter's only switch for one weight scale per tensor (tensorflow#44153).
        converter._experimental_disable_per_channel = quantize == "int8_per_tensor"
    if quantize == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    try:
        if quantize == "int8_mixed":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            flatbuffer, layers = convert_mixed(converter, calibration_images)
            if details is not None:
                details["layers"] = layers
        else:
            with native_stderr_silenced():  # the converter's own C++ log lines
                flatbuffer = converter.convert()
    except Exception as e:  # ConverterError and friends carry the op list in the text
        raise ExportError(_explain(str(e), quantize)) from None
    if quantize in INT8_INPUT:
        _check_raw_pixel_input(flatbuffer)
    return flatbuffer


def _representative(images: np.ndarray):
    """Calibration batches as float32 pixels. The first image gets one black and one
    white pixel, so the input's range is exactly [0, 255]: its uint8 quantization is
    then scale 1, zero point 0, and the `.tflite` takes raw pixels."""
    first = np.array(images[0], np.float32)
    first.reshape(-1, 3)[:2] = [[0, 0, 0], [255, 255, 255]]

    def batches():
        yield [first[None]]
        for image in images[1:]:
            yield [np.asarray(image, np.float32)[None]]

    return batches


def _check_raw_pixel_input(flatbuffer: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced():
        details = Interpreter(model_content=flatbuffer).get_input_details()[0]
    scale, zero_point = details["quantization"]
    if details["dtype"] != np.uint8 or (scale, zero_point) != (1.0, 0):
        raise ExportError(f"int8 conversion gave an input of {details['dtype'].__name__} with "
                          f"scale {scale} and zero point {zero_point}, not raw uint8 pixels.")


def _explain(message: str, quantize: str) -> str:
    """Name the ops (and the layers using them) that keep a model off TFLite builtins."""
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"^(?:Custom|Flex) ops: (.+)$", message, flags=re.MULTILINE):
        ops.update(op.strip() for op in line.split(","))
    if ops:
        named = []
        for op in sorted(ops):
            where = re.search(rf'fused\["{op}:", "[^"/]+/([^"/@]+)/', message)
            # The graph's name scope is the layer name plus a "_1" uniquifying suffix.
            layer = re.sub(r"_\d+$", "", where.group(1)) if where else None
            named.append(f"tf.{op}" + (f" (layer {layer!r})" if layer else ""))
        return (f"The model needs TensorFlow ops that are not TFLite builtins: "
                f"{', '.join(named)}. tf-twohead exports builtin ops only (Flex/SELECT_TF_OPS "
                "would need the large TensorFlow runtime on the phone); replace those layers.")
    last = next((ln for ln in reversed(message.strip().splitlines()) if "error" in ln), "")
    return f"TFLite conversion ({quantize}) failed: {last or message[:500]}"
