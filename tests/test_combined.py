"""The combined-encoders model: hierarchy, model, freezing, one-cycle, staged runs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import SHALLOW
from model_checks import check_outputs, check_round_trip

from tf_twohead import config
from tf_twohead.data.pipeline import checked_splits
from tf_twohead.models import build_combined, build_softmax
from tf_twohead.models.combined import encoders, load_encoder, set_encoders_frozen
from tf_twohead.recipe.optimizers import OneCycle

THREE = ["data.class_names=[document, not a document, screen]"]


def combined_config(tmp_path, root, *overrides):
    """The combined recipe on the tiny three-class data: groups {0} and {1, 2}."""
    return config.load_config("configs/combined.yaml", [
        f"data.root={root}", "data.img_size=32", f"output_dir={tmp_path / 'runs'}",
        "model.head_width=16", SHALLOW, "train.batch_size=8", *THREE,
        "data.coarse={paper: [0], other: [1, 2]}", "model.heads={main: [2], aux: [1]}",
        "train.stages={coarse: 1, fine: 1, frozen: 1, unfrozen: 1}", *overrides])


# --- hierarchy validation -------------------------------------------------------------

@pytest.mark.parametrize("groups, message", [
    ("{a: [0], b: [1]}", r"class id 2 \('screen'\) is in no group"),
    ("{a: [0, 1], b: [1, 2]}", r"class id 1 \('not a document'\) is in two groups, 'a' and 'b'"),
    ("{a: [0, 1], b: [2, 7]}", r"class id 7 does not exist"),
    ("{a: [0, 1, 2], b: []}", r"data.coarse.b must be a non-empty list"),
])
def test_coarse_groups_must_cover_every_class_once(groups, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load_config("configs/two_head.yaml", [f"data.coarse={groups}"])


def test_combined_needs_two_groups_and_a_combined_stage():
    with pytest.raises(config.ConfigError, match="at least two groups"):
        config.load_config("configs/combined.yaml", ["data.coarse={all: [0,1,2,3,4,5,6,7,8,9]}"])
    with pytest.raises(config.ConfigError, match="at least one epoch of the combined model"):
        config.load_config("configs/combined.yaml",
                           ["train.stages.frozen=0", "train.stages.unfrozen=0"])
    cfg = config.load_config("configs/combined.yaml")
    assert list(config.coarse_ids(cfg)) == [0, 2, 0, 2, 0, 1, 0, 1, 2, 1]


def test_shipped_combined_configs_share_data_and_budget():
    staged, baseline, control = (config.load_config(f"configs/{n}.yaml") for n in
                                 ("combined", "combined_baseline", "combined_control"))
    assert staged.data == baseline.data == control.data
    assert (staged.train.stages.total == baseline.train.epochs
            == control.train.stages.total == 12)
    assert baseline.model.kind == "softmax" and control.model.kind == "combined"
    assert control.train.stages.coarse == control.train.stages.fine == 0


# --- the model ------------------------------------------------------------------------

def test_combined_model_outputs_layout_and_round_trip(tmp_path):
    model = build_combined(32, head_width=16, num_classes=5)
    check_outputs(model, ["probs"], [5])
    assert [e.name for e in encoders(model)] == ["coarse_encoder", "fine_encoder"]
    assert model.get_layer("concat_pool").output.shape[-1] == 4 * 16  # [max, avg] of 2 x 16
    head = [layer.name for layer in model.layers if layer.name.startswith("head_")]
    assert head == ["head_bn1", "head_dropout1", "head_fc1", "head_relu", "head_bn2",
                    "head_dropout2", "head_fc2"]
    assert not model.get_layer("head_fc1").use_bias
    assert model.get_layer("head_bn1").epsilon == 1e-5
    check_round_trip(model, tmp_path / "combined.keras")


def test_load_encoder_copies_the_body_of_a_softmax_model():
    source = build_softmax(32, head_width=16, num_classes=3)
    model = build_combined(32, head_width=16, num_classes=5)
    copied = load_encoder(model, "fine_encoder", source)
    assert copied > 10
    enc = model.get_layer("fine_encoder")
    for name in ("conv1_0", "conv5_0", "conv5_1"):
        for a, b in zip(enc.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    body = keras.Model(source.inputs, source.get_layer("conv5_2").output)
    normalized = source.get_layer("normalize")(x)
    np.testing.assert_allclose(np.asarray(enc(normalized)), np.asarray(body(x)), atol=1e-5)


def _trainable_kinds(model):
    """Which kinds of encoder variables are trainable: {'kernel', 'gamma', ...}."""
    names = {id(v) for e in encoders(model) for v in e.weights}
    return sorted({v.path.split("/")[-1] for v in model.trainable_weights if id(v) in names})


def test_freezing_conventions():
    model = build_combined(32, head_width=16, num_classes=5)
    set_encoders_frozen(model, True, "train")  # fastai's train_bn
    assert _trainable_kinds(model) == ["beta", "gamma"]
    bn = encoders(model)[0].get_layer("conv1_1")
    assert bn.trainable  # so it normalises with batch statistics in training
    set_encoders_frozen(model, True, "inference")  # Keras' convention
    assert _trainable_kinds(model) == []
    set_encoders_frozen(model, False)
    assert "kernel" in _trainable_kinds(model)
    head = {v.path for v in model.trainable_weights if v.path.startswith("head_")}
    assert {"head_fc1/kernel", "head_fc2/kernel", "head_bn1/gamma"} <= head


def test_one_cycle_matches_fastai_combined_cos():
    lr, total, pct = 1e-3, 200, 0.25
    schedule = OneCycle(lr, total, pct_start=pct)

    def fastai(step):  # fastai's combined_cos(pct, lr/25, lr, lr/1e5) at pos = step / total
        pos = step / total

        def cos(start, end, p):
            return start + (1 + math.cos(math.pi * (1 - p))) * (end - start) / 2

        if pos < pct:
            return cos(lr / 25, lr, pos / pct)
        return cos(lr, lr / 1e5, (pos - pct) / (1 - pct))

    for step in (0, 1, 17, 49, 50, 51, 120, 199, 200):
        assert float(schedule(step)) == pytest.approx(fastai(step), rel=1e-4)  # float32
    restored = OneCycle.from_config(schedule.get_config())
    assert float(restored(77)) == pytest.approx(float(schedule(77)))


# --- staged training ------------------------------------------------------------------

class WeightLog(keras.callbacks.Callback):
    """Records, at the start and end of every fit, a copy of named weights by stage."""

    def __init__(self):
        super().__init__()
        self.fits = []

    def snapshot(self):
        m = self.model
        if "coarse_encoder" in [layer.name for layer in m.layers]:
            enc = m.get_layer("fine_encoder")
            picks = {"conv": enc.get_layer("conv5_0").kernel,
                     "bn_gamma": enc.get_layer("conv5_1").gamma,
                     "bn_mean": enc.get_layer("conv5_1").moving_mean,
                     "head": m.get_layer("head_fc1").kernel}
        else:
            picks = {"conv": m.get_layer("conv5_0").kernel, "head": m.get_layer("probs").kernel}
        return {k: np.array(v) for k, v in picks.items()}

    def on_train_begin(self, logs=None):
        self.fits.append({"name": self.model.name, "begin": self.snapshot()})

    def on_train_end(self, logs=None):
        self.fits[-1]["end"] = self.snapshot()


@pytest.mark.slow
def test_staged_run_order_weights_evaluation_and_tflite(tmp_path, dataset):
    from tf_twohead.evaluation import evaluate as evaluation
    from tf_twohead.export import tflite as export
    from tf_twohead.training import run as training
    from tf_twohead.training import staged as stages

    cfg = combined_config(tmp_path, dataset, "train.steps_per_epoch=2")
    log = WeightLog()
    state = training.train(cfg, verbose=0, callbacks=[log])
    run = cfg.run_dir

    # Order and files: one fit per stage, each with its own folder and history rows.
    assert [f["name"] for f in log.fits] == ["softmax", "softmax", "combined", "combined"]
    history = pd.read_csv(run / "history.csv")
    assert list(history["stage"]) == ["coarse", "fine", "frozen", "unfrozen"]
    assert list(history["epoch"]) == [1, 2, 3, 4]
    for stage in ("coarse", "fine", "frozen", "unfrozen"):
        assert (run / "stages" / stage / "last.keras").is_file()
    assert state["stage"] in ("frozen", "unfrozen") and (run / "best.keras").is_file()

    # Which weights move: frozen keeps the fine encoder's convs (as the fine stage left
    # them) but trains its BatchNorm (train_bn) and the head; unfrozen moves the convs.
    coarse, fine, frozen, unfrozen = log.fits
    fine_model = keras.saving.load_model(run / "stages" / "fine" / "last.keras")
    np.testing.assert_array_equal(frozen["begin"]["conv"],
                                  np.array(fine_model.get_layer("conv5_0").kernel))
    np.testing.assert_array_equal(frozen["begin"]["conv"], frozen["end"]["conv"])
    for moved in ("bn_gamma", "bn_mean", "head"):
        assert not np.allclose(frozen["begin"][moved], frozen["end"][moved]), moved
    np.testing.assert_array_equal(unfrozen["begin"]["head"], frozen["end"]["head"])
    assert not np.allclose(unfrozen["begin"]["conv"], unfrozen["end"]["conv"])
    for fit in (coarse, fine):
        assert not np.allclose(fit["begin"]["conv"], fit["end"]["conv"])

    # Both encoders' stages see the same split: the same images, coarse = group of fine.
    splits = checked_splits(cfg, ("val",), progress=False)
    coarse_ds = stages._stage_dataset(cfg, splits["val"], "coarse")
    fine_ds = stages._stage_dataset(cfg, splits["val"], "fine")
    for (xc, yc), (xf, yf) in zip(coarse_ds, fine_ds):
        np.testing.assert_array_equal(xc, xf)
        groups = config.coarse_ids(cfg)[np.argmax(yf["probs"], axis=1)]
        np.testing.assert_array_equal(np.argmax(yc["probs"], axis=1), groups)

    # Multi-class evaluation of the combined model, and its TFLite export with parity.
    result = evaluation.evaluate(run, latency_images=2, progress=False)
    assert result["kind"] == "combined"
    classes = result["classes"]
    assert set(classes["per_class"]) == {"document", "not a document", "screen"}
    assert "top5" not in classes  # 3 classes: the top 5 always hold the answer
    assert (run / "confusion_classes.png").is_file()
    converted = export.to_tflite(run, "none", parity_images=18, progress=False)
    assert converted["parity"]["passed"] and converted["metadata"]["outputs"] == ["probs"]
