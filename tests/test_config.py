import dataclasses

import pytest

from tf_twohead import config


@pytest.mark.parametrize("path", ["configs/two_head.yaml", "configs/three_class.yaml"])
def test_shipped_configs_load_and_round_trip(path, tmp_path):
    cfg = config.load_config(path)
    config.dump(cfg, tmp_path / "c.yaml")
    assert config.load_config(tmp_path / "c.yaml") == cfg


def test_shipped_config_documents_every_key():
    text = open("configs/two_head.yaml").read()
    for line in text.splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            assert "# (" in line or line.strip().endswith(":") or "#   " in line, line


def test_reference_defaults():
    cfg = config.load_config("configs/two_head.yaml")
    assert cfg.model.heads == {"main": [2], "aux": [1]}
    assert cfg.train.loss_weights == {"main": 2.0, "aux": 1.0}
    assert (cfg.data.img_size, cfg.train.epochs, cfg.train.label_smoothing) == (256, 9, 0.1)
    assert config.load_config("configs/three_class.yaml").model.kind == "softmax"


def test_overrides_win_and_config_is_frozen():
    cfg = config.load_config("configs/two_head.yaml", ["train.epochs=3", "data.img_size=64",
                                               "model.kind=softmax", "exp=x"])
    assert (cfg.train.epochs, cfg.data.img_size, cfg.model.kind, cfg.exp) == (3, 64, "softmax", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 5


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "train.epoch=3.*Key 'epoch' not in 'TrainConfig'"),
    ("modle.kind=softmax", "Key 'modle'"),
    ("train.epochs=many", "could not be converted"),
    ("model.width=0.7", "model.width must be one of"),
    ("model.kind=three", "model.kind must be one of"),
    ("data.on_bad_image=ignore", "data.on_bad_image"),
    ("model.heads={main: [5]}", r"model.heads.main must be positive class ids in 0..2"),
    ("train.monitor_head=aux2", "train.monitor_head"),
    ("epochs", "key=value"),
])
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load_config("configs/two_head.yaml", [override])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    with pytest.raises(config.ConfigError, match=r"bad.yaml.*epochz"):
        config.load_config(bad)


def test_heads_in_a_file_replace_the_defaults(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("model:\n  heads: {screen: [2], doc: [0], other: [1]}\n"
                    "train:\n  loss_weights: {screen: 2}\n  monitor_head: screen\n")
    cfg = config.load_config(path)
    assert cfg.model.heads == {"screen": [2], "doc": [0], "other": [1]}
    assert cfg.train.loss_weights == {"screen": 2.0}


def test_pos_weight_is_for_sigmoid_heads_only():
    cfg = config.load_config(None, ["train.pos_weight={main: 3}"])
    assert cfg.train.pos_weight == {"main": 3.0}
    with pytest.raises(config.ConfigError, match="train.pos_weight must be empty"):
        config.load_config(None, ["train.pos_weight={main: 3}", "model.kind=softmax"])


def test_recipe_defaults_follow_the_pytorch_reference():
    cfg = config.load_config("configs/two_head.yaml")
    assert cfg.model.init == "torch"
    assert (cfg.train.weight_decay_mode, cfg.train.adam_epsilon) == ("l2", 1e-8)
    assert cfg.data.rotation_interpolation == "nearest"
    keras_like = config.load_config("configs/two_head.yaml", [
        "model.init=keras", "train.weight_decay_mode=decoupled", "train.adam_epsilon=1e-7",
        "data.rotation_interpolation=bilinear"])
    assert (keras_like.model.init, keras_like.train.weight_decay_mode) == ("keras", "decoupled")


@pytest.mark.parametrize("override, message", [
    ("model.init=xavier", r"model.init must be one of \('torch', 'keras'\). "
                          r"Received: model.init='xavier'"),
    ("train.weight_decay_mode=adamw", "Received: train.weight_decay_mode='adamw'"),
    ("train.adam_epsilon=0", "Received: train.adam_epsilon=0.0"),
    ("data.rotation_interpolation=cubic", "Received: data.rotation_interpolation='cubic'"),
])
def test_recipe_keys_are_validated(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load_config("configs/two_head.yaml", [override])


def test_an_override_of_one_mapping_entry_keeps_the_others():
    cfg = config.load_config("configs/two_head.yaml", ["train.loss_weights.aux=0.5"])
    assert cfg.train.loss_weights == {"main": 2.0, "aux": 0.5}
    cfg = config.load_config("configs/two_head.yaml", ["train.loss_weights={aux: 3}"])
    assert cfg.train.loss_weights == {"aux": 3.0}  # the whole mapping, as written


def test_with_values_sets_dotted_keys_and_validates():
    cfg = config.load_config("configs/two_head.yaml")
    trial = config.with_values(cfg, {"model.head_widths.aux": 64, "model.width": 1})
    assert trial.model.head_widths == {"aux": 64} and trial.model.width == 1.0
    assert trial.model.head_width == 1024 and cfg.model.head_widths == {}
    with pytest.raises(config.ConfigError, match="model.head_widths.other"):
        config.with_values(cfg, {"model.head_widths.other": 8})
    with pytest.raises(config.ConfigError, match="empty for model.kind=softmax"):
        config.load_config("configs/three_class.yaml", ["model.head_widths={main: 8}"])
