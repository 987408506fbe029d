"""TFLite export of trained models: parity per mode, planted mismatches, metadata, the
.tflite as a first-class model (predict, evaluate). The serving graph's signatures and
conversion errors are in test_export_graph.py (a file of its own so that the two pytest
workers can share the export tests)."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import tiny_config, write_dataset

import tf_twohead as tt
from tf_twohead import models
from tf_twohead.cli import main
from tf_twohead.export import selective, serving
from tf_twohead.export import tflite as export
from tf_twohead.export.parity import compare_predictions
from tf_twohead.inference import metadata
from tf_twohead.inference.predictor import Predictor
from tf_twohead.training import run as training


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
@pytest.mark.parametrize("quantize", serving.QUANTIZATIONS)
def test_parity_within_bounds_for_each_mode(trained, quantize):
    result = export.to_tflite(trained["two_head"], quantize, calibration=24, progress=False)
    path = trained["two_head"] / "exports" / ("best.tflite" if quantize == "none"
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
        float32 = trained["two_head"] / "exports" / "best.tflite"
        assert result["bytes"] < 0.5 * float32.stat().st_size
    if quantize == "int8":  # raw uint8 pixels in; normalised by an int8 depthwise conv
        interpreter = Interpreter(model_path=str(path))
        details = interpreter.get_input_details()[0]
        assert details["dtype"] == np.uint8 and details["quantization"] == (1.0, 0)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        assert ops[:2] == ["QUANTIZE", "DEPTHWISE_CONV_2D"] and "MUL" not in ops, ops
    per_channel = path.with_name("best.int8.tflite")
    if quantize == "int8_per_tensor" and per_channel.is_file():  # one scale per tensor
        assert result["bytes"] < per_channel.stat().st_size
    if quantize == "int16x8":  # LiteRT's 16x8 kernels take float32 pixels, cast by the runner
        assert Predictor(path).runner.dtype == np.float32
    if quantize == "int8_mixed":  # every layer's error beside the file, worst first
        layers = pd.read_csv(result["layers"])
        assert list(layers.columns) == ["layer", "op", "rmse_scale", "max_abs_error", "float"]
        assert len(layers) > 40 and layers["rmse_scale"].is_monotonic_decreasing
        assert (layers["rmse_scale"] > 0).all() and "conv1_0" in set(layers["layer"])
        assert result["metadata"]["float_layers"] == list(layers.loc[layers["float"], "layer"])


@pytest.mark.slow
def test_int8_mixed_keeps_the_layers_above_the_bound_in_float(trained, tmp_path, monkeypatch):
    """With the bound just under the worst layer's error, that layer alone stays float32:
    its op computes in float between a DEQUANTIZE and a QUANTIZE, the rest is int8."""
    monkeypatch.setattr(selective, "STANDS_OUT", np.inf)
    none = export.to_tflite(trained["two_head"], "int8_mixed", calibration=24,
                            out=tmp_path / "none.tflite", progress=False)
    errors = pd.read_csv(none["layers"])["rmse_scale"]
    monkeypatch.setattr(selective, "STANDS_OUT", (errors[0] + errors[1]) / 2)
    kept = export.to_tflite(trained["two_head"], "int8_mixed", calibration=24,
                            out=tmp_path / "kept.tflite", progress=False)
    layers = pd.read_csv(kept["layers"])
    assert list(layers["float"]) == [True] + [False] * (len(layers) - 1)
    assert kept["metadata"]["float_layers"] == [layers["layer"][0]]
    assert none["metadata"]["float_layers"] == []

    def float_ops(path):
        interpreter = Interpreter(model_path=str(path))
        tensors = interpreter.get_tensor_details()
        return [op["op_name"] for op in interpreter._get_ops_details()
                if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
                and any(tensors[i]["dtype"] == np.float32 for i in op["outputs"])]

    assert float_ops(none["path"]) == [] and len(float_ops(kept["path"])) == 1
    assert kept["parity"]["passed"]


def test_layer_names_from_fused_tensor_names():
    fused = ("two_head_body_1/stage3_0_branch1_4_1/Relu;two_head_body_1/stage3_0_branch1_3_1/"
             "batchnorm/add_1;two_head_body_1/stage3_0_branch1_2_1/convolution;two_head_body_1/"
             "stage3_0_branch1_3_1/batchnorm/sub1")
    assert selective.layer_name(fused) == "stage3_0_branch1_2"
    assert selective.layer_name("two_head_body_1/aux_1/MatMul;two_head_body_1/aux_1/Add") == "aux"
    assert selective.layer_name("StatefulPartitionedCall:1", "LOGISTIC") == \
        "logistic (StatefulPartitionedCall:1)"


@pytest.mark.slow
def test_softmax_baseline_converts_with_parity(trained):
    result = export.to_tflite(trained["softmax"], "none", progress=False)
    assert result["parity"]["passed"]
    assert result["metadata"]["outputs"] == ["probs"]
    assert result["metadata"]["heads"]["main"]["threshold"] is None  # argmax decision


@pytest.mark.slow
def test_planted_mismatch_is_caught(trained, tmp_path, monkeypatch):
    other = models.build("two_head", 64, head_width=16)  # same shape, other weights
    other_dir = tmp_path / "sm"
    wrong = serving.convert_saved_model(serving.write_serving_model(other, other_dir))
    monkeypatch.setattr(export, "convert_saved_model", lambda *a, **k: wrong)
    out = tmp_path / "model.tflite"
    with pytest.raises(tt.ParityError, match="FAILED") as err:
        export.to_tflite(trained["two_head"], "none", out=out, progress=False)
    assert not out.exists()  # never under the name of a good model
    failed = tmp_path / "model.parity-failed.tflite"
    assert failed.is_file() and err.value.path == failed and not err.value.report["passed"]
    assert not json.loads((tmp_path / "model.parity-failed.parity.json").read_text())["passed"]


@pytest.mark.slow
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
    assert flipped["heads"]["main"]["p_flips"] < 1e-3


@pytest.mark.slow
def test_parity_of_softmax_models_bounds_class_accuracy(trained):
    reference = Predictor(trained["softmax"] / "best.keras")
    images = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    class_ids = reference.predict_arrays(images)["probs"].argmax(axis=1)  # keras: 100%
    truth = {name: np.isin(class_ids, ids).astype(int) for name, ids in reference.heads.items()}
    same = compare_predictions(reference, reference, images, truth, "dynamic", "main",
                               class_ids=class_ids)
    assert same["passed"] and same["classes"]["agreement"] == 1.0
    assert same["bound"] == {"tolerated_rate": 0.01, "large_move": 0.1, "alpha": 1e-3}

    class OneClassOff:  # a candidate that moves one image to another class
        heads, thresholds = reference.heads, {}

        def predict_arrays(self, x):
            scores = reference.predict_arrays(x)
            probs = scores["probs"].copy()
            probs[0] = np.roll(probs[0], 1)
            return reference.head_scores({"probs": probs})

        def decisions(self, scores):
            return reference.decisions(scores)

    # One image of ten moved: a flip that ten images cannot tell from noise, so it passes
    # (and the report still shows it).
    off = compare_predictions(reference, OneClassOff(), images, truth, "dynamic", "main",
                              class_ids=class_ids)
    assert off["passed"] and off["classes"]["flips"] == 1
    assert off["classes"]["agreement"] == 0.9
    assert off["classes"]["accuracy_change"] == pytest.approx(-0.1)


@pytest.mark.slow
def test_metadata_round_trip_without_tensorflow(trained):
    result = export.to_tflite(trained["two_head"], "float16", progress=False)
    path = trained["two_head"] / "exports" / "best.float16.tflite"
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


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TensorFlow is already running")  # in-process CLI calls
def test_tflite_predicts_and_evaluates_like_keras(trained, capsys):
    run = trained["two_head"]
    assert main(["convert", "--tflite", str(run), "--out", str(run / "best.tflite")]) == 0
    assert "parity (none, 48 validation images): PASSED" in capsys.readouterr().out
    image = next((run.parent.parent / "ds" / "screens").glob("*.jpg"))
    assert main(["predict", str(run / "best.keras"), str(image), "--json"]) == 0
    assert main(["predict", str(run / "best.tflite"), str(image), "--threads", "1",
                 "--json"]) == 0
    from_keras, from_tflite = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert from_tflite["decisions"] == from_keras["decisions"]
    assert from_tflite["probabilities"]["main"] == pytest.approx(
        from_keras["probabilities"]["main"], abs=2e-3)  # 3 decimals

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


class Noisy:
    """A stand-in predictor whose probabilities are the reference's plus noise."""

    def __init__(self, scores, flip=None, heads=("main",)):
        self.scores, self.flip = scores, flip
        self.heads, self.thresholds, self.kind = {h: [2] for h in heads}, {}, "two_head"

    def predict_arrays(self, x):
        return self.scores

    def decisions(self, scores):
        return {h: scores[h] >= 0.5 for h in self.heads}


def test_statistical_parity_keeps_good_models_and_refuses_broken_ones():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 1000)
    truth = {"main": (rng.uniform(0, 1, 1000) < p).astype(int)}
    images = np.zeros((1000, 1, 1, 3), np.uint8)
    reference = Noisy({"main": p})
    # The fm6k case the old bound refused: 4 decisions of 1000 flipped, |dp| at most 0.03.
    near = np.argsort(np.abs(p - 0.5))[:4]
    good = p.copy()
    good[near] = 1 - good[near]
    far = np.abs(p - 0.5) > 0.03  # noise of 0.03 that flips nothing else
    good[far] = np.clip(good[far] + rng.uniform(-0.03, 0.03, far.sum()), 0, 1)
    good[near] = np.where(p[near] >= 0.5, 0.499, 0.501)
    kept = compare_predictions(reference, Noisy({"main": good}), images, truth, "dynamic",
                               "main")
    assert kept["passed"] and kept["heads"]["main"]["flips"] == 4
    # One flip of 200 images (3 of 16 search trials were refused for it) passes too.
    one = p[:200].copy()
    one[near[0] % 200] = 1 - one[near[0] % 200]
    small = compare_predictions(Noisy({"main": p[:200]}), Noisy({"main": one}), images[:200],
                                {"main": truth["main"][:200]}, "dynamic", "main")
    assert small["passed"]
    # Broken: 5% of decisions flipped, or probabilities thrown about, always refused.
    broken = p.copy()
    broken[:50] = 1 - broken[:50]
    assert not compare_predictions(reference, Noisy({"main": broken}), images, truth,
                                   "dynamic", "main")["passed"]
    scrambled = rng.permutation(p)
    report = compare_predictions(reference, Noisy({"main": scrambled}), images, truth,
                                 "int8", "main")
    assert not report["passed"] and report["heads"]["main"]["p_large_moves"] < 1e-10


@pytest.mark.slow
def test_onnx_export_has_parity_named_outputs_and_predicts_without_tensorflow(trained):
    import subprocess
    import sys

    from tf_twohead.export.onnx import to_onnx

    result = to_onnx(trained["two_head"], parity_images=48, progress=False)
    path = trained["two_head"] / "exports" / "best.onnx"
    assert result["path"] == str(path) and result["parity"]["passed"]
    assert result["parity"]["heads"]["main"]["max_abs_diff"] <= 1e-4
    predictor = Predictor(path)
    assert predictor.output_names == ["aux", "main"] and predictor.metadata["heads"] == \
        result["metadata"]["heads"]
    code = ("import sys; from tf_twohead.cli import main; code = main(['predict', sys.argv[1], "
            "sys.argv[2]]); print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules); "
            "sys.exit(code)")
    folder = Path(tt.load_config(trained["two_head"] / "config.yaml").data.root) / "screens"
    done = subprocess.run([sys.executable, "-c", code, str(path), str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "TF False False" and "main: yes" in lines[0], lines


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TensorFlow is already running")  # in-process CLI calls
def test_benchmark_table_rows_columns_files_and_a_format_that_cannot_be_made(
        trained, monkeypatch, capsys):
    from tf_twohead.export.benchmark import benchmark

    run = trained["two_head"]
    (run / "exports" / "best.onnx").unlink(missing_ok=True)
    monkeypatch.setitem(__import__("sys").modules, "tf2onnx", None)  # not installed
    formats = ["keras", "onnx", "none", "int8_per_tensor"]
    table = benchmark(run, formats, latency_images=4, parity_images=48, progress=False)
    assert list(table["quantization"]) == ["none", "none", "none", "int8_per_tensor"]
    assert list(table["format"]) == ["keras", "onnx", "tflite", "tflite"]
    onnx = table.iloc[1]
    assert onnx["status"].startswith("not made: ONNX needs tf2onnx") and np.isnan(onnx["main_f1"])
    for column in ("kib", "model_ms", "file_to_decisions_ms", "main_f1", "main_auc",
                   "main_recall@P0.95", "main_flips", "aux_f1", "aux_flips"):
        assert table.drop(index=1)[column].notna().all(), column
    keras = table.iloc[0]
    assert keras["status"] == "source" and keras["main_flips"] == 0 and keras["aux_flips"] == 0
    assert table.iloc[2]["main_flips"] <= 1  # float32 TFLite answers as the .keras does
    assert table.iloc[3]["kib"] < table.iloc[2]["kib"] / 2
    for suffix in ("csv", "md", "png"):
        assert (run / "exports" / f"benchmark.{suffix}").is_file()
    monkeypatch.delitem(__import__("sys").modules, "tf2onnx")
    assert main(["benchmark", str(run), "--formats", "onnx,int8_per_tensor",
                 "--latency-images", "2", "--parity-images", "48"]) == 0
    said = capsys.readouterr().out
    assert "| onnx | none | best.onnx |" in said and "| made |" in said  # made now ...
    assert "| int8_per_tensor | best.int8_per_tensor.tflite |" in said and "reused" in said
    assert main(["benchmark", str(run), "--formats", "keras,tflite"]) == 2  # ... unknown: one line
    assert "'tflite' is not one of keras, onnx, none" in capsys.readouterr().err
