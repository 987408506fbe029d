"""Hostile input, second round: the newer surfaces (the audit's clean copy, a search's
workers, `clean`) write and delete only inside their own folders, whoever crafts the
input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import write_dataset, write_image

import tf_twohead as tt


def snapshot(folder, skip=()):
    return {p for p in folder.rglob("*") if not any(s in p.parents or s == p for s in skip)}


def test_the_clean_copy_never_writes_outside_its_folder(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(4, 4, 4))
    (root / "a" / "b" / "c").mkdir(parents=True)
    write_image(root / "a" / "img.jpg", class_id=0)
    (root / "deep").symlink_to(root / "a" / "b" / "c")  # a symlink inside the dataset
    # Resolves inside ROOT (root/a/img.jpg), but spelled onto the copy it climbs out of it.
    with open(root / "train.csv", "a") as f:
        f.write("deep/../../img.jpg,0\n")
    out, cache = tmp_path / "clean", tmp_path / "cache"
    before = snapshot(tmp_path)
    result = tt.audit(root, img_size=32, write_clean=out, progress=False,
                      overrides=[f"data.cache_dir={cache}"])
    created = snapshot(tmp_path) - before
    assert {p for p in created if not (p == out or out in p.parents or p == cache
                                       or cache in p.parents or root / "audit" in p.parents
                                       or p == root / "audit")} == set()
    assert (out / "a" / "img.jpg").is_file() and "a/img.jpg,0" in (out / "train.csv").read_text()
    assert result.clean["train"] == 13
    copy = out / (root / "documents").name / "train 0.jpg"
    copy.write_bytes(b"edited")  # a copy, not a hard link: the original is untouched
    assert (root / "documents" / "train 0.jpg").read_bytes() != b"edited"
    shutil.rmtree(out)


@pytest.mark.parametrize("override, key", [
    ("train.learning_rate=1e300", "train.learning_rate"),
    ("train.lr_gamma=-0.1", "train.lr_gamma"),
    ("train.loss_weights={main: -2, aux: 1}", "train.loss_weights.main"),
    ("train.pos_weight={main: -3}", "train.pos_weight.main"),
    ("train.pos_weight={main: 0}", "train.pos_weight.main"),
    ("model.head_widths={main: 100000000}", "model.head_widths.main"),
])
def test_absurd_training_numbers_are_refused_naming_the_key(override, key):
    with pytest.raises(tt.ConfigError, match=key.replace(".", r"\.")):
        tt.load_config(None, [override])


def test_a_non_finite_loss_ends_the_run_before_the_epoch_is_saved(tmp_path):
    import keras

    from tf_twohead.training.loop import RunCheckpoint, StopOnNonFiniteLoss, run_callbacks

    cfg = tt.load_config(None, [f"output_dir={tmp_path}"])
    checkpoint = RunCheckpoint(tmp_path, cfg.monitor)
    callbacks = run_callbacks(cfg, tmp_path, checkpoint, False, tmp_path / "logs")
    assert isinstance(callbacks[0], StopOnNonFiniteLoss)  # before history and checkpoint
    stop = callbacks[0]
    stop.on_epoch_end(0, {"loss": 0.7})  # a finite loss goes on
    for bad in (float("nan"), float("inf")):
        with pytest.raises(tt.DivergedError, match="epoch 3 is .*Nothing of that epoch"):
            stop.on_epoch_end(2, {"loss": bad})
    # Run as Keras runs them: the error stops the list before the checkpoint saves.
    saved = []
    checkpoint.on_epoch_end = lambda epoch, logs=None: saved.append(epoch)
    with pytest.raises(tt.DivergedError):
        keras.callbacks.CallbackList([stop, checkpoint]).on_epoch_end(0, {"loss": float("nan")})
    assert saved == [] and not (tmp_path / "best.keras").exists()


def test_predict_globs_end_over_symlink_loops_and_a_bomb_header_is_a_per_file_error(
        tmp_path):
    import io

    from PIL import Image

    from tf_twohead.data.images import ImageRefused, load_rgb
    from tf_twohead.inference.files import expand_images

    folder = tmp_path / "photos"
    write_image(folder / "a.jpg")
    (folder / "loop").symlink_to(folder)  # a link to itself: `**` must not follow it
    found = expand_images([f"{folder}/**/*.jpg", str(folder)])
    assert found == [folder / "a.jpg", folder / "a.jpg"]
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")  # the frame header: height, width at +5..+9
    data[sof + 5:sof + 9] = (65500).to_bytes(2, "big") * 2
    (folder / "bomb.jpg").write_bytes(bytes(data))
    with pytest.raises(ImageRefused, match="MP budget"):  # an OSError: predict skips the file
        load_rgb(folder / "bomb.jpg", 32)


def test_predict_reports_a_refused_image_and_goes_on_to_the_rest(tmp_path, capsys):
    from tf_twohead import cli, models

    folder = tmp_path / "photos"
    write_image(folder / "a.jpg")
    data = bytearray((tmp_path / "photos" / "a.jpg").read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65500).to_bytes(2, "big") * 2
    (folder / "b_bomb.jpg").write_bytes(bytes(data))
    write_image(folder / "c.jpg", seed=2)
    model = tmp_path / "m.keras"
    models.build("two_head", 32, head_width=8).save(model)
    assert cli.main(["predict", str(model), str(folder), "--save", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert "b_bomb.jpg: error:" in err and "Traceback" not in err
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].endswith(tuple("0123456789")) and "c.jpg" in rows[2]


def tiny_tflite(path, size, outputs):
    """A small `.tflite` with an 'image' input of `size` and the given outputs (name ->
    width), as a stranger could craft one."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.uint8, name="image")])
    def serve(image):
        mean = tf.reduce_mean(tf.cast(image, tf.float32), axis=[1, 2])[:, :1]
        return {name: tf.nn.softmax(tf.tile(mean, [1, width])) for name, width in outputs.items()}

    module = tf.Module()
    module.serve = serve
    saved = str(path) + ".saved"
    tf.saved_model.save(module, saved, signatures={"serving_default": serve})
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(saved).convert())
    return path


def test_crafted_tflite_files_are_one_line_errors(tmp_path, capsys):
    import json
    import zipfile

    from tf_twohead import cli

    image = write_image(tmp_path / "x.jpg")
    huge = tiny_tflite(tmp_path / "huge.tflite", 8000, {"main": 1})  # would upscale each image
    assert cli.main(["predict", str(huge), str(image)]) == 2
    err = capsys.readouterr().err
    assert "huge.tflite: its input is [1, 8000, 8000, 3]" in err and "Traceback" not in err

    softmax = tiny_tflite(tmp_path / "soft.tflite", 32, {"probs": 3})
    meta = {"format": "tf-twohead", "class_names": ["a", "b", "c", "d", "e"], "kind": "softmax",
            "heads": {"main": {"positive_ids": [4], "threshold": None}}}
    with zipfile.ZipFile(softmax, "a") as archive:
        archive.writestr("tf_twohead_metadata.json", json.dumps(meta))
    assert cli.main(["predict", str(softmax), str(image)]) == 2
    err = capsys.readouterr().err
    assert "do not fit its 3 softmax outputs" in err and "Traceback" not in err

    deep = tiny_tflite(tmp_path / "deep.tflite", 32, {"main": 1})
    with zipfile.ZipFile(deep, "a") as archive:
        archive.writestr("tf_twohead_metadata.json", "[" * 100_000 + "]" * 100_000)
    assert cli.main(["predict", str(deep), str(image)]) == 2
    err = capsys.readouterr().err
    assert "not readable JSON (RecursionError" in err and "Traceback" not in err


def tiny_onnx(path, size=32, dtype="uint8", name="image", external=None, meta=None):
    """An ONNX graph that answers 'main' from a uint8 image (its mean times a tensor that
    can be made to live in an external file)."""
    from onnx import TensorProto, helper

    kind = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT}[dtype]
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.5])
    if external:  # the data "lives" in a file the model names
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1],
                             data_location=TensorProto.EXTERNAL)
        weight.external_data.add(key="location", value=external)
    graph = helper.make_graph(
        [helper.make_node("Cast", [name], ["f"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),
         helper.make_node("Mul", ["m", "w"], ["p"]),
         helper.make_node("Reshape", ["p", "shape"], ["main"])],
        "g", [helper.make_tensor_value_info(name, kind, [1, size, size, 3])],
        [helper.make_tensor_value_info("main", TensorProto.FLOAT, [1, 1])],
        initializer=[weight, helper.make_tensor("shape", TensorProto.INT64, [2], [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key="tf_twohead_metadata.json", value=meta)
    path.write_bytes(model.SerializeToString())
    return path


def test_crafted_onnx_files_are_one_line_errors(tmp_path, capsys, monkeypatch):
    from tf_twohead import cli
    from tf_twohead.inference import onnx_runner

    image = write_image(tmp_path / "x.jpg")
    plain = tiny_onnx(tmp_path / "plain.onnx")
    assert cli.main(["predict", str(plain), str(image)]) == 0  # the crafting itself works
    assert "main:" in capsys.readouterr().out
    (tmp_path / "secret").write_bytes(b"\0\0\0?")
    leak = tiny_onnx(tmp_path / "leak.onnx", external="secret")  # any file it names
    bad = {"leak.onnx": "its tensors point to external data files",
           "float.onnx": "tf-twohead's take one uint8 'image'",
           "named.onnx": "tf-twohead's take one uint8 'image'",
           "huge.onnx": "tf-twohead's take one uint8 'image' (1, S, S, 3) with S in 16..",
           "junk.onnx": "junk.onnx: not an ONNX model",
           "deep.onnx": "not readable JSON (RecursionError"}
    tiny_onnx(tmp_path / "float.onnx", dtype="float32")
    tiny_onnx(tmp_path / "named.onnx", name="input_1")
    tiny_onnx(tmp_path / "huge.onnx", size=8000)
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    tiny_onnx(tmp_path / "deep.onnx", meta="[" * 100_000 + "]" * 100_000)
    for name, why in bad.items():
        assert cli.main(["predict", str(tmp_path / name), str(image)]) == 2, name
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert leak.is_file()
    monkeypatch.setattr(onnx_runner, "MAX_ONNX_BYTES", 100)
    assert cli.main(["predict", str(plain), str(image)]) == 2
    assert "over the 0 MiB" in capsys.readouterr().err


def test_a_symlinked_audit_folder_or_marker_is_refused(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "audit").symlink_to(elsewhere)
    with pytest.raises(tt.DataError, match="is a symlink"):
        tt.audit(root, img_size=32, progress=False,
                 overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    (root / "audit").unlink()
    (root / "audit").mkdir()
    (root / "audit" / ".tf_twohead_audit").symlink_to(tmp_path / "nowhere")  # dangling
    with pytest.raises(tt.DataError, match="is a symlink"):
        tt.audit(root, img_size=32, progress=False,
                 overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "nowhere").exists()


def test_a_malformed_cache_is_rebuilt_not_a_traceback(tmp_path):
    from tf_twohead.data.cache import load_split

    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2))
    first = load_split(root, "train", 32, 3, cache_dir=tmp_path / "cache", progress=False)
    (meta,) = (tmp_path / "cache").glob("train-*/meta.json")
    for broken in ("{not json", "[]", '{"bad": {"99": "x"}, "hashes": []}'):
        meta.write_text(broken)
        again = load_split(root, "train", 32, 3, cache_dir=tmp_path / "cache", progress=False)
        np.testing.assert_array_equal(np.asarray(again.images), np.asarray(first.images))


def test_a_full_disk_names_the_file_being_written(tmp_path):
    import errno

    from tf_twohead.cli.console import os_error
    from tf_twohead.core.fileio import atomic_path

    target = tmp_path / "run" / "best.keras"
    with pytest.raises(OSError) as raised, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # as h5py and zipfile raise it
    assert raised.value.filename == str(target)
    assert str(target) in os_error("train", raised.value) and not list(target.parent.iterdir())
