"""The serving graph: TFLite signatures named after the heads, and conversion errors
(a Flex op, a bad quantize mode, a model without data for its parity check)."""

import tempfile

import keras
import pytest
import tensorflow as tf

import tf_twohead as tt
from tf_twohead import models
from tf_twohead.export import serving
from tf_twohead.export import tflite as export


class Erfinv(keras.layers.Layer):
    def call(self, x):
        return tf.math.erfinv(tf.sigmoid(x))


def test_flex_op_is_a_clear_error():
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    x = Erfinv(name="odd_activation")(x)
    model = keras.Model(inputs, {"main": keras.layers.Dense(1, name="main")(x)})
    with tempfile.TemporaryDirectory() as tmp:
        saved = serving.write_serving_model(model, f"{tmp}/sm")
        with pytest.raises(tt.ExportError, match=r"tf\.Erfinv \(layer 'odd_activation'\)"):
            serving.convert_saved_model(saved)


def test_bad_quantize_and_missing_data_are_clear(tmp_path):
    with pytest.raises(tt.ExportError, match="quantize must be one of"):
        export.to_tflite(tmp_path, "int4")
    path = tmp_path / "m.keras"
    models.build("two_head", 32, head_width=8).save(path)
    with pytest.raises(tt.ExportError, match="pass --data ROOT"):
        export.to_tflite(path, "none")
