"""Porting torchvision ShuffleNetV2 weights: exact logits, strict names, hashes, pretrained."""

import hashlib
import pickle
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
from torch_helpers import run_torch

import tf_twohead as tt
from tf_twohead import cli, config
from tf_twohead.pretrained import load as pretrained
from tf_twohead.pretrained import torchvision as weights
from tf_twohead.pretrained.torchfile import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    TorchFileError,
    read_state_dict,
)

SIZE = 64

# A random torchvision model per width, with random BN statistics so that inference-mode
# BN is really exercised; x0.5 and x1.0 saved in the legacy format (as torchvision's
# 2018 files may be), x1.5 and x2.0 as zip. Writes <w>.pth and the logits of x.npy.
TORCH_MODELS = """
import sys, numpy as np, torch, torchvision
out = sys.argv[1]
x = torch.from_numpy(np.load(f"{out}/x.npy")).permute(0, 3, 1, 2)
for i, w in enumerate(["0_5", "1_0", "1_5", "2_0"]):
    torch.manual_seed(i)
    m = getattr(torchvision.models, f"shufflenet_v2_x{w}")()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.2, 0.2)
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    torch.save(m.state_dict(), f"{out}/{w}.pth", _use_new_zipfile_serialization=i >= 2)
    with torch.no_grad():
        np.save(f"{out}/{w}.logits.npy", m(x).numpy())
"""


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchvision")
    x = np.random.default_rng(0).normal(0, 1, (2, SIZE, SIZE, 3)).astype("float32")
    np.save(out / "x.npy", x)
    run_torch(TORCH_MODELS, str(out))
    return out


@pytest.mark.parametrize("width", [0.5, 1.0, 1.5, 2.0])
def test_cli_import_gives_torchvision_logits(torch_files, width, capsys):
    tag = str(width).replace(".", "_")
    out = torch_files / f"{tag}.weights.h5"
    assert cli.main(["weights", "import-torchvision", str(torch_files / f"{tag}.pth"),
                     "--width", str(width), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    model = tt.shufflenet_v2(width, (SIZE, SIZE, 3))
    model.load_weights(out)
    ours = model.predict(np.load(torch_files / "x.npy"), verbose=0)
    theirs = np.load(torch_files / f"{tag}.logits.npy")
    assert np.abs(ours - theirs).max() <= 1e-4
    assert (ours.argmax(1) == theirs.argmax(1)).all()


def test_reader_matches_torch_in_both_formats(torch_files):
    legacy, zipped = read_state_dict(torch_files / "0_5.pth"), read_state_dict(
        torch_files / "1_5.pth")
    assert legacy["conv1.0.weight"].shape == (24, 3, 3, 3)
    assert legacy["conv1.1.num_batches_tracked"].dtype == np.int64
    assert zipped["stage2.0.branch1.0.weight"].shape == (24, 1, 3, 3)
    assert len(legacy) == len(zipped)  # same architecture, same keys


def _state(width=0.5):
    model = tt.shufflenet_v2(width, (SIZE, SIZE, 3))
    state = {}
    for layer in model.layers:
        for w in layer.weights:
            value = w.numpy()
            if value.ndim == 4:
                depthwise = "Depthwise" in type(layer).__name__
                value = np.transpose(value, (2, 3, 0, 1) if depthwise else (3, 2, 0, 1))
            elif value.ndim == 2:
                value = value.T
            state[weights.torch_key(layer.name, w.name)] = value + 1.0
    return model, state


def test_strict_matching_lists_every_problem_and_assigns_nothing():
    model, state = _state()
    del state["conv1.0.weight"]
    state["stage9.0.weight"] = np.zeros(3)
    state["fc.bias"] = np.zeros(7)
    before = model.get_layer("stage2_0_branch1_0").kernel.numpy()
    with pytest.raises(tt.WeightsError) as err:
        weights.assign_state_dict(model, state, where="my.pth")
    message = str(err.value)
    assert "my.pth does not match" in message
    assert "1 missing" in message and "conv1.0.weight (for conv1_0/kernel)" in message
    assert "1 unexpected" in message and "stage9.0.weight" in message
    assert "1 mis-shaped" in message and "fc.bias: (7,)" in message
    np.testing.assert_array_equal(model.get_layer("stage2_0_branch1_0").kernel.numpy(), before)


def test_a_state_of_our_own_layout_round_trips():
    model, state = _state()
    assert weights.assign_state_dict(model, state) == len(model.weights)
    np.testing.assert_array_equal(model.get_layer("fc").bias.numpy(), state["fc.bias"])


def test_hash_in_the_name_is_checked(torch_files, tmp_path):
    digest = hashlib.sha256((torch_files / "0_5.pth").read_bytes()).hexdigest()
    good = tmp_path / f"shufflenetv2_x0.5-{digest[:10]}.pth"
    shutil.copy(torch_files / "0_5.pth", good)
    assert weights.check_hash(good) == digest[:10]
    bad = tmp_path / "shufflenetv2_x0.5-0123456789.pth"
    shutil.copy(torch_files / "0_5.pth", bad)
    with pytest.raises(tt.WeightsError, match="does not start with 0123456789"):
        weights.import_torchvision(bad, 0.5)
    assert weights.check_hash(torch_files / "0_5.pth") is None  # no hash in the name


def test_reader_refuses_code(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for obj in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(obj, f)
        f.write(pickle.dumps(print))  # any global that is not a tensor rebuild
    with pytest.raises(TorchFileError, match="refusing to load builtins.print"):
        read_state_dict(evil)
    (tmp_path / "text.pth").write_text("not a model")
    with pytest.raises(TorchFileError, match="not a readable PyTorch state_dict"):
        read_state_dict(tmp_path / "text.pth")


def test_offline_imagenet_fails_at_once_saying_how_to_pass_a_file(monkeypatch, tmp_path):
    # Port 9 on localhost refuses at once: the same failure as a machine with no network.
    monkeypatch.setitem(pretrained.TORCHVISION_URLS, 0.5,
                        "http://127.0.0.1:9/models/shufflenetv2_x0.5-f707e7126e.pth")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cfg = config.load_config(None, ["model.pretrained=imagenet", f"output_dir={tmp_path}",
                             f"data.root={tmp_path / 'no such data'}"])
    with pytest.raises(tt.WeightsError) as err:
        tt.train(cfg)  # before any data is read (the data folder does not exist)
    assert "could not download" in str(err.value)
    assert "model.pretrained=/path/to/shufflenetv2_x0.5-f707e7126e.pth" in str(err.value)


def test_pretrained_file_loads_the_backbone_and_leaves_heads_fresh(torch_files, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    src = tmp_path / "x0.5.weights.h5"
    weights.save_weights(weights.import_torchvision(torch_files / "0_5.pth", 0.5), src)
    reference = tt.shufflenet_v2(0.5)
    reference.load_weights(src)
    overrides = [f"model.pretrained={src}", "data.img_size=64"]
    keras.utils.set_random_seed(0)
    two_head = tt.build_model(config.load_config(None, overrides))
    keras.utils.set_random_seed(0)
    fresh = tt.build_model(config.load_config(None, overrides[1:]))
    for name in ("conv1_0", "stage2_0_branch1_0", "stage4_3_branch2_7"):
        for a, b in zip(two_head.get_layer(name).weights, reference.get_layer(name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for name in ("main_conv", "aux_conv", "main", "aux"):  # the heads start as without
        np.testing.assert_array_equal(two_head.get_layer(name).weights[0].numpy(),
                                      fresh.get_layer(name).weights[0].numpy())
    assert not np.array_equal(two_head.get_layer("conv1_0").kernel.numpy(),
                              fresh.get_layer("conv1_0").kernel.numpy())
    softmax = tt.build_model(config.load_config(None, [*overrides, "model.kind=softmax"]))
    np.testing.assert_array_equal(softmax.get_layer("conv5_0").kernel.numpy(),
                                  reference.get_layer("conv5_0").kernel.numpy())
    # The .pth itself works as model.pretrained too (converted once, then cached).
    from_pth = tt.build_model(config.load_config(
        None, [f"model.pretrained={torch_files / '0_5.pth'}", "data.img_size=64"]))
    np.testing.assert_array_equal(from_pth.get_layer("conv1_0").kernel.numpy(),
                                  reference.get_layer("conv1_0").kernel.numpy())
    assert len(list((tmp_path / "keras" / "tf_twohead").glob("*.weights.h5"))) == 1


def test_a_missing_pretrained_file_stops_training_before_the_data(tmp_path):
    cfg = config.load_config(None, ["model.pretrained=/no/such/file.pth", f"output_dir={tmp_path}",
                             f"data.root={tmp_path / 'no such data'}"])
    with pytest.raises(tt.WeightsError, match="no such file /no/such/file.pth"):
        tt.train(cfg)


class _Snapshot(keras.callbacks.Callback):
    """Copies of a few layers' weights at the end of every epoch."""

    def __init__(self, names):
        super().__init__()
        self.names, self.epochs = names, []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({n: [w.numpy().copy() for w in self.model.get_layer(n).weights]
                            for n in self.names})


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.slow
def test_freeze_epochs_train_heads_first_then_everything(dataset, tmp_path):
    from conftest import Interrupt, tiny_config

    source = tt.shufflenet_v2(0.5)
    weights.save_weights(source, tmp_path / "start.weights.h5")
    cfg = tiny_config(tmp_path, dataset, f"model.pretrained={tmp_path / 'start.weights.h5'}",
                      "train.epochs=3", "train.freeze_epochs=2", "train.steps_per_epoch=2",
                      "model.stage_repeats=[4,8,4]")  # ImageNet's depth
    names = ["conv1_0", "stage3_0_branch2_1", "main_conv", "main"]  # conv, BN, head conv, head
    snap = _Snapshot(names)
    with pytest.raises(KeyboardInterrupt):  # interrupted in the frozen phase ...
        tt.train(cfg, verbose=0, callbacks=[snap, Interrupt(after=1)])
    tt.train(cfg, resume=True, verbose=0, callbacks=[snap])  # ... and resumed
    start = {n: source.get_layer(n).get_weights() for n in names[:2]}
    for epoch in (0, 1):  # frozen: backbone kernels and BN moving statistics untouched
        for name in names[:2]:
            assert _same(snap.epochs[epoch][name], start[name]), (epoch, name)
    assert not _same(snap.epochs[0]["main_conv"], snap.epochs[1]["main_conv"])  # heads train
    for name in names[:2]:  # unfrozen: everything moves
        assert not _same(snap.epochs[2][name], start[name]), name
    history = pd.read_csv(cfg.run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]  # one history across both phases


def test_freeze_epochs_need_a_pretrained_backbone():
    with pytest.raises(config.ConfigError, match="train.freeze_epochs"):
        config.load_config(None, ["train.freeze_epochs=1"])
