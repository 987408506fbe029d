"""Keras-native MobileNetV3 backbones go through everything ShuffleNet does (offline)."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_config, write_dataset
from model_checks import check_outputs, check_round_trip

import tf_twohead as tt
from tf_twohead import config, models
from tf_twohead.cli import main
from tf_twohead.export import tflite as export
from tf_twohead.keras_files import load as saving
from tf_twohead.training import loop as fitting
from tf_twohead.training import run as training

MOBILENETS = ("mobilenet_v3_small", "mobilenet_v3_large")
FEATURES = {"mobilenet_v3_small": 576, "mobilenet_v3_large": 960}


@pytest.mark.parametrize("backbone", MOBILENETS)
def test_build_and_round_trip(backbone, tmp_path):
    model = models.build("two_head", 64, 1.0, head_width=16, backbone=backbone)
    check_outputs(model, ["main", "aux"], [1, 1])
    assert model.get_layer("main_conv").input.shape[-1] == FEATURES[backbone]  # split point
    mean, std = models.input_normalization(model)  # keras.applications' x / 127.5 - 1
    assert mean == [0.5] * 3 and std == [0.5] * 3
    check_round_trip(model, tmp_path / "m.keras")
    softmax = models.build("softmax", 64, 0.75, head_width=16, backbone=backbone)
    check_outputs(softmax, ["probs"], [3])


def test_freezing_a_mobilenet_leaves_only_the_heads_trainable():
    model = models.build("two_head", 64, 1.0, head_width=16, backbone="mobilenet_v3_small")
    assert [layer.name for layer in models.backbone_layers(model)] == ["mobilenet_v3_small"]
    assert fitting.set_backbone_trainable(model, False)
    heads = {w.path.split("/")[0] for w in model.trainable_weights}
    assert heads == {"main_conv", "main_conv_bn", "main", "aux_conv", "aux_conv_bn", "aux"}


def test_config_checks_mobilenet_width_and_weights():
    with pytest.raises(config.ConfigError, match="alpha"):
        config.load_config(None, ["model.backbone=mobilenet_v3_small"])  # width 0.5 is ShuffleNet's
    with pytest.raises(config.ConfigError, match="model.backbone"):
        config.load_config(None, ["model.backbone=resnet50"])
    with pytest.raises(config.ConfigError, match="model.pretrained"):
        config.load_config(None, ["model.backbone=mobilenet_v3_small", "model.width=1.0",
                           "model.pretrained=configs/two_head.yaml"])


def test_offline_imagenet_mobilenet_fails_at_once(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    cfg = config.load_config(None, ["model.backbone=mobilenet_v3_small", "model.width=1.0",
                             "model.pretrained=imagenet", f"output_dir={tmp_path}",
                             f"data.root={tmp_path / 'no such data'}"])
    with pytest.raises(tt.WeightsError, match="Offline.*keras/models"):
        training.train(cfg)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TensorFlow is already running")
def test_train_convert_predict_evaluate(tmp_path, capsys):
    backbone = "mobilenet_v3_small"
    root = write_dataset(tmp_path / "ds", per_class=(8, 8, 8), size=64)
    cfg = tiny_config(tmp_path, root, f"model.backbone={backbone}", "model.width=1.0",
                      "data.img_size=64", "train.epochs=1", "model.stage_repeats=[4,8,4]")
    training.train(cfg, verbose=0)
    run = cfg.run_dir
    result = export.to_tflite(run, "dynamic", progress=False)
    assert result["parity"]["passed"], result["parity"]
    assert set(result["metadata"]["outputs"]) == {"main", "aux"}
    assert result["metadata"]["input"]["mean"] == [0.5] * 3
    image = next((root / "screens").glob("*.jpg"))
    capsys.readouterr()
    assert main(["predict", result["path"], str(image), "--threads", "1", "--json"]) == 0
    assert main(["predict", str(run / "best.keras"), str(image), "--json"]) == 0
    lite, keras_out = (json.loads(x)["probabilities"] for x in
                       capsys.readouterr().out.splitlines())
    assert lite["main"] == pytest.approx(keras_out["main"], abs=0.05)  # int8 weights
    assert main(["evaluate", result["path"], "--threads", "1", "--latency-images", "3"]) == 0
    metrics = json.loads((run / "exports" / "best.dynamic.tflite.metrics.json").read_text())
    assert set(metrics["heads"]) == {"main", "aux"}
    reloaded = saving.load_model(run / "best.keras")
    x = np.zeros((1, 64, 64, 3), np.uint8)
    assert keras.ops.convert_to_numpy(reloaded(x)["main"]).shape == (1, 1)
