"""TFLite export: signatures by name, parity per mode, planted mismatches, metadata,
the .tflite as a first-class model (predict, evaluate), and Flex-op errors."""

import json
import tempfile
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from conftest import tiny_config, write_dataset

from tf_twohead import export, metadata, models, training
from tf_twohead.cli import main
from tf_twohead.inference import Predictor
from tf_twohead.parity import compare_predictions


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-head and a softmax run on colour-coded images: confident, learnable.

    64 px, not 32: at 32 px stage4 is 1x1, BatchNorm's batch statistics over 8 images
    are noise, and the inference-mode model stays near p=0.5, where any quantization
    flips decisions. 10 epochs let the moving statistics catch up.
    """
    tmp = tmp_path_factory.mktemp("export")
    root = write_dataset(tmp / "ds", per_class=(16, 16, 16), size=64)
    runs = {}
    for kind in ("two_head", "softmax"):
        cfg = tiny_config(tmp, root, f"model.kind={kind}", f"exp={kind}", "train.epochs=10",
                          "data.img_size=64",
                          "data.rotation=0", "train.learning_rate=0.003",
                          "train.lr_step_epochs=100")
        training.train(cfg, verbose=0)
        runs[kind] = cfg.run_dir
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("quantize", export.QUANTIZATIONS)
def test_parity_within_bounds_for_each_mode(trained, quantize):
    result = export.to_tflite(trained["two_head"], quantize, calibration=24, progress=False)
    path = trained["two_head"] / ("best.tflite" if quantize == "none"
                                  else f"best.{quantize}.tflite")
    assert result["path"] == str(path) and path.is_file()
    parity = result["parity"]
    assert parity["passed"], parity
    assert parity["images"] == 48 and set(parity["heads"]) == {"main", "aux"}
    if quantize == "none":
        assert parity["heads"]["main"]["max_abs_diff"] <= 1e-4
    written = json.loads(path.with_suffix(".parity.json").read_text())
    assert written["passed"] and written["quantization"] == quantize
    if quantize == "dynamic":  # big weights stored as int8 (tiny tensors stay float)
        assert result["bytes"] < 0.5 * (trained["two_head"] / "best.tflite").stat().st_size


def test_softmax_baseline_converts_with_parity(trained):
    result = export.to_tflite(trained["softmax"], "none", progress=False)
    assert result["parity"]["passed"]
    assert result["metadata"]["outputs"] == ["probs"]
    assert result["metadata"]["heads"]["main"]["threshold"] is None  # argmax decision


def test_planted_mismatch_is_caught(trained, tmp_path, monkeypatch):
    other = models.build("two_head", 64, head_width=16)  # same shape, other weights
    other_dir = tmp_path / "sm"
    wrong = export.convert_saved_model(export.write_serving_model(other, other_dir))
    monkeypatch.setattr(export, "convert_saved_model", lambda *a, **k: wrong)
    out = tmp_path / "model.tflite"
    with pytest.raises(export.ParityError, match="FAILED") as err:
        export.to_tflite(trained["two_head"], "none", out=out, progress=False)
    assert not out.exists()  # never under the name of a good model
    failed = tmp_path / "model.parity-failed.tflite"
    assert failed.is_file() and err.value.path == failed and not err.value.report["passed"]
    assert not json.loads((tmp_path / "model.parity-failed.parity.json").read_text())["passed"]


def test_parity_check_compares_decisions_and_f1(trained, tmp_path):
    reference = Predictor(trained["two_head"] / "best.keras")
    images = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    truth = {"main": np.array([1, 0, 0, 1, 0, 0]), "aux": np.array([0, 1, 0, 0, 1, 0])}
    same = compare_predictions(reference, reference, images, truth, "none", "main")
    assert same["passed"] and same["heads"]["main"]["agreement"] == 1.0

    class Flipped:  # a candidate whose main head says the opposite
        heads, thresholds = reference.heads, {}

        def predict_arrays(self, x):
            scores = reference.predict_arrays(x)
            return {**scores, "main": 1 - scores["main"]}

        def decisions(self, scores):
            return reference.decisions(scores)

    flipped = compare_predictions(reference, Flipped(), images, truth, "dynamic", "main")
    assert not flipped["passed"] and flipped["heads"]["main"]["agreement"] < 0.98


def test_parity_of_softmax_models_bounds_class_accuracy(trained):
    reference = Predictor(trained["softmax"] / "best.keras")
    images = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    class_ids = reference.predict_arrays(images)["probs"].argmax(axis=1)  # keras: 100%
    truth = {name: np.isin(class_ids, ids).astype(int) for name, ids in reference.heads.items()}
    same = compare_predictions(reference, reference, images, truth, "dynamic", "main",
                               class_ids=class_ids)
    assert same["passed"] and same["classes"]["agreement"] == 1.0
    assert same["bound"] == {"min_agreement": 0.98, "max_accuracy_drop": 0.01}

    class OneClassOff:  # a candidate that moves one image to another class
        heads, thresholds = reference.heads, {}

        def predict_arrays(self, x):
            scores = reference.predict_arrays(x)
            probs = scores["probs"].copy()
            probs[0] = np.roll(probs[0], 1)
            return reference.head_scores({"probs": probs})

        def decisions(self, scores):
            return reference.decisions(scores)

    off = compare_predictions(reference, OneClassOff(), images, truth, "dynamic", "main",
                              class_ids=class_ids)
    assert not off["passed"]
    assert off["classes"]["agreement"] == 0.9
    assert off["classes"]["accuracy_change"] == pytest.approx(-0.1)


def test_metadata_round_trip_without_tensorflow(trained):
    result = export.to_tflite(trained["two_head"], "float16", progress=False)
    path = trained["two_head"] / "best.float16.tflite"
    with zipfile.ZipFile(path) as archive:  # plain zip reader, no TF involved
        embedded = json.loads(archive.read(metadata.METADATA_NAME))
    assert embedded == result["metadata"] == metadata.read(path)
    assert embedded == json.loads(path.with_suffix(".metadata.json").read_text())
    assert embedded["heads"]["main"] == {"positive_ids": [2], "positive_names": ["screen"],
                                         "threshold": 0.5}
    assert embedded["input"]["dtype"] == "uint8" and embedded["input"]["shape"][1:] == [64, 64, 3]
    assert "inside the model" in embedded["input"]["normalization"]
    assert embedded["source_model"]["sha256"] == metadata.sha256(trained["two_head"] /
                                                                 "best.keras")
    assert embedded["quantization"] == "float16" and embedded["package_version"]
    Interpreter(model_path=str(path)).get_signature_runner()  # still a valid model


@pytest.mark.filterwarnings("ignore:TensorFlow is already running")  # in-process CLI calls
def test_tflite_predicts_and_evaluates_like_keras(trained, capsys):
    run = trained["two_head"]
    assert main(["convert", "--tflite", str(run), "--out", str(run / "best.tflite")]) == 0
    assert "parity (none, 48 validation images): PASSED" in capsys.readouterr().out
    image = next((run.parent.parent / "ds" / "screens").glob("*.jpg"))
    assert main(["predict", str(run / "best.keras"), str(image)]) == 0
    assert main(["predict", str(run / "best.tflite"), str(image), "--threads", "1"]) == 0
    from_keras, from_tflite = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert sorted(from_tflite) == sorted(from_keras) == ["aux", "main", "path"]
    assert from_tflite["main"] == pytest.approx(from_keras["main"], abs=1e-4)

    assert main(["evaluate", str(run / "best.tflite"), "--threads", "1",
                 "--latency-images", "5"]) == 0
    assert main(["evaluate", str(run), "--latency-images", "5"]) == 0
    lite = json.loads((run / "best.tflite.metrics.json").read_text())
    keras_metrics = json.loads((run / "metrics.json").read_text())  # not overwritten
    assert lite["format"] == "tflite" and keras_metrics["format"] == "keras"
    assert set(lite["heads"]["main"]) == set(keras_metrics["heads"]["main"])
    assert lite["heads"]["main"]["f1"] == pytest.approx(keras_metrics["heads"]["main"]["f1"])
    assert lite["latency_ms"] > 0 and lite["model_bytes"] == (run / "best.tflite").stat().st_size
    capsys.readouterr()
    assert main(["compare", str(run), str(run / "best.tflite")]) == 0
    assert "two_head (two_head, tflite)" in capsys.readouterr().out


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
