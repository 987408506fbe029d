"""Crafted `.keras` files: the archive, the weights and the config are checked before Keras
builds anything, so a small file cannot make loading allocate gigabytes, fill the
temporary folder, or run for long; each refusal is one line naming the file."""

from __future__ import annotations

import json
import tempfile
import zipfile

import h5py
import keras
import numpy as np
import pytest
from peak_memory import peak_mb

from tf_twohead import cli
from tf_twohead.core.errors import ModelFileError
from tf_twohead.keras_files import check as keras_file
from tf_twohead.keras_files.load import load_model


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small functional model's `.keras` file: Input(8) -> Dense(4) -> Dense(1)."""
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    model.save(path)
    return path


def rewrite(src, dst, config=None, extra=(), compression=zipfile.ZIP_STORED):
    """Copy a `.keras` archive, with `config(cfg)` applied and `extra` (name, bytes) added."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", compression=compression) as b:
        for item in a.infolist():
            data = a.read(item)
            if item.filename == "config.json" and config:
                cfg = json.loads(data)
                config(cfg)
                data = json.dumps(cfg).encode()
            b.writestr(item.filename, data)
        for name, data in extra:
            b.writestr(name, data)
    return dst


def huge_dense(cfg):
    """40 GB of kernel: a 100,000-wide input into 100,000 units, in the graph and in
    the layer's build_config, which Keras builds from before it reads a weight."""
    layers = cfg["config"]["layers"]
    layers[0]["config"]["batch_shape"] = [None, 100_000]
    layers[1]["config"]["units"] = 100_000
    layers[1]["build_config"] = {"input_shape": [None, 100_000]}
    layers[2]["build_config"] = {"input_shape": [None, 100_000]}


def test_a_small_file_declaring_a_huge_dense_is_refused_before_keras_builds_it(small,
                                                                                tmp_path):
    evil = rewrite(small, tmp_path / "dense.keras", huge_dense)
    assert evil.stat().st_size < 30_000
    with pytest.raises(ModelFileError, match=r"dense.keras: the model declares "
                       r"10,000,\d{3},\d{3} parameters, more than 50,000,000"):
        load_model(evil)
    extra, outcome = peak_mb("import tf_twohead, keras\n"
                             "from tf_twohead.keras_files.load import load_model",
                             f"load_model({str(evil)!r})")
    assert outcome.startswith("ModelFileError") and extra < 300, (extra, outcome)


def test_the_stateless_count_leaves_no_variable_for_keras_to_allocate_later(small, tmp_path):
    from keras.src.backend.common import global_state

    evil = rewrite(small, tmp_path / "dense.keras", huge_dense)
    with pytest.raises(ModelFileError):
        load_model(evil)
    assert not global_state.get_global_attribute("uninitialized_variables")
    with keras.StatelessScope():  # would initialise the 40 GB kernel if it were left
        pass
    assert load_model(small).count_params() == 8 * 4 + 4 + 4 + 1  # a real file still loads


def many_layers(cfg, count=60_000):
    layers = cfg["config"]["layers"]
    chain = [dict(layers[2], name=f"d{i}", config=dict(layers[2]["config"], name=f"d{i}"))
             for i in range(count)]
    layers[2:] = chain


@pytest.mark.parametrize("craft, why", [
    (lambda cfg: many_layers(cfg), r"config.json of 59,\d{3},\d{3} bytes, more than 2 MiB"),
    (lambda cfg: cfg.update(junk=[{"class_name": "ReLU"}] * 30_000),
     r"declares 30,0\d\d objects .*more than 20,000"),
    (lambda cfg: cfg.update(config=json.loads("[" * 50_000 + "]" * 50_000)),
     "config.json is not readable JSON"),
])
def test_config_bombs_are_refused_before_keras_builds(small, tmp_path, craft, why):
    evil = tmp_path / "bomb.keras"
    with zipfile.ZipFile(small) as a:
        cfg = json.loads(a.read("config.json"))
    try:
        craft(cfg)
        text = json.dumps(cfg)
    except RecursionError:  # json.dumps cannot write what the attacker writes by hand
        text = '{"class_name": "Functional", "config": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with zipfile.ZipFile(small) as a, zipfile.ZipFile(evil, "w") as b:
        for item in a.infolist():
            b.writestr(item.filename, text if item.filename == "config.json" else a.read(item))
    with pytest.raises(ModelFileError, match=why):
        load_model(evil)


def test_an_assets_bomb_is_refused_before_anything_is_unpacked(small, tmp_path, monkeypatch):
    evil = rewrite(small, tmp_path / "assets.keras",
                   extra=[("assets/blob.bin", b"\0" * (200 << 20))],
                   compression=zipfile.ZIP_DEFLATED)
    assert evil.stat().st_size < 1 << 20
    temp = tmp_path / "temp"  # where Keras would unpack the assets
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(ModelFileError, match=r"assets/blob.bin' unpacks to 209,715,200 bytes"
                       r" from .* a decompression bomb"):
        load_model(evil)
    assert list(temp.iterdir()) == []


def test_a_weights_file_declaring_huge_datasets_is_refused_unread(small, tmp_path):
    weights = tmp_path / "model.weights.h5"
    with h5py.File(weights, "w") as h5:  # chunks never written: a tiny file, 4 GB declared
        h5.create_dataset("layers/dense/vars/0", shape=(1 << 30,), dtype="f4",
                          chunks=(1 << 16,), compression="gzip")
    evil = tmp_path / "weights.keras"
    with zipfile.ZipFile(small) as a, zipfile.ZipFile(evil, "w") as b:
        for item in a.infolist():
            data = weights.read_bytes() if item.filename == "model.weights.h5" else a.read(item)
            b.writestr(item.filename, data)
    with pytest.raises(ModelFileError, match="declares 4,294,967,296 bytes of weights"):
        load_model(evil)


def test_not_a_keras_archive_is_one_line(small, tmp_path, capsys):
    legacy = tmp_path / "model.h5"  # Keras would load a legacy .h5 without these checks
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelFileError, match="expected a .keras file"):
        load_model(legacy)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(small.read_bytes()[:300])
    image = tmp_path / "x.png"
    keras.utils.save_img(image, np.zeros((32, 32, 3)))
    assert cli.main(["predict", str(broken), str(image)]) == 2
    err = capsys.readouterr().err
    assert "broken.keras: not a readable .keras archive" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_real_model_passes_and_declares_its_parameters(tmp_path):
    from tf_twohead import models

    model = models.build("two_head", 32, head_width=8)
    model.save(tmp_path / "m.keras")
    assert keras_file.check_keras_file(tmp_path / "m.keras") == model.count_params()


def test_predict_save_to_a_folder_is_refused_before_any_image(small, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    assert cli.main(["predict", str(small), str(tmp_path / "none.jpg"), "--save",
                     str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--save {folder} is a folder" in err and "predictions.csv" in err
    assert list(folder.iterdir()) == [] and ".tmp" not in err
