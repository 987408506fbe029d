"""The serving graph: TFLite signatures named after the heads, and conversion errors
(a Flex op, a bad quantize mode, a model without data for its parity check)."""

import tempfile

import keras
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tf_twohead import export, models


def signature_outputs(model) -> set:
    with tempfile.TemporaryDirectory() as tmp:
        flatbuffer = export.convert_saved_model(export.write_serving_model(model, f"{tmp}/sm"))
    interpreter = Interpreter(model_content=flatbuffer)
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == ["image"]
    return set(signature["outputs"])


@pytest.mark.parametrize("kind, heads, expected", [
    ("two_head", {"main": [2], "aux": [1]}, {"main", "aux"}),
    ("two_head", {"screen": [2], "doc": [0], "other": [1]}, {"screen", "doc", "other"}),
    ("softmax", None, {"probs"}),
])
def test_signature_outputs_are_named_after_the_heads(kind, heads, expected):
    model = models.build(kind, 32, head_width=8, heads=heads)
    assert signature_outputs(model) == expected


class Erfinv(keras.layers.Layer):
    def call(self, x):
        return tf.math.erfinv(tf.sigmoid(x))


def test_flex_op_is_a_clear_error():
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    x = Erfinv(name="odd_activation")(x)
    model = keras.Model(inputs, {"main": keras.layers.Dense(1, name="main")(x)})
    with tempfile.TemporaryDirectory() as tmp:
        saved = export.write_serving_model(model, f"{tmp}/sm")
        with pytest.raises(export.ExportError, match=r"tf\.Erfinv \(layer 'odd_activation'\)"):
            export.convert_saved_model(saved)


def test_bad_quantize_and_missing_data_are_clear(tmp_path):
    with pytest.raises(export.ExportError, match="quantize must be one of"):
        export.to_tflite(tmp_path, "int4")
    path = tmp_path / "m.keras"
    models.build("two_head", 32, head_width=8).save(path)
    with pytest.raises(export.ExportError, match="pass --data ROOT"):
        export.to_tflite(path, "none")
