"""The checks every model kind must pass (DESIGN.md 3.6), in one shared case, as
keras-hub's `TestCase.run_model_saving_test` and friends: output names, shapes, dtype and
range; a config round trip; `.keras` save and load in a fresh process with equal outputs;
TFLite with the same named outputs and the same answers. `tests/test_model_kinds.py`
runs it for every kind; other tests call the single checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SIZE = 32
# Every kind a config can build, tiny: (build kwargs, output names, output widths).
KINDS = {
    "two_head": ({"kind": "two_head"}, ["main", "aux"], [1, 1]),
    "three_heads": ({"kind": "two_head", "heads": {"screen": [2], "doc": [0], "other": [1]}},
                    ["screen", "doc", "other"], [1, 1, 1]),
    "softmax": ({"kind": "softmax"}, ["probs"], [3]),
    "combined": ({"kind": "combined"}, ["probs"], [3]),
    "mobilenet_v3_small": ({"kind": "two_head", "width": 1.0, "backbone": "mobilenet_v3_small"},
                           ["main", "aux"], [1, 1]),
}


def build_kind(name: str):
    from tf_twohead import models

    kwargs, _, _ = KINDS[name]
    if kwargs.get("backbone", "shufflenet_v2") == "shufflenet_v2":
        kwargs = {**kwargs, "stage_repeats": (1, 1, 1)}  # every unit kind, a fifth the layers
    return models.build(img_size=SIZE, head_width=8, **kwargs)


def images(seed=0, batch=2, size=SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def numpy_outputs(model, x) -> dict:
    import keras

    return {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}


def check_outputs(model, names, widths, batch=2):
    """Outputs are a dict with exactly `names`, shaped `(batch, width)`, in [0, 1]."""
    size = model.inputs[0].shape[1]
    assert model.inputs[0].dtype == "uint8"
    x = images(0, batch, size)
    out = model(x, training=False)
    assert isinstance(out, dict)
    assert sorted(out) == sorted(names)
    for name, width in zip(names, widths):
        assert tuple(out[name].shape) == (batch, width)
        values = np.asarray(out[name])
        assert np.all((values >= 0) & (values <= 1))
    return x, out


def check_config_round_trip(model):
    """`from_config(get_config())` rebuilds the same model: same layers, and with the same
    weights the same outputs."""
    import keras

    copy = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    copy.set_weights(model.get_weights())
    x = images(2, 2, model.inputs[0].shape[1])
    before, after = numpy_outputs(model, x), numpy_outputs(copy, x)
    for name in before:
        np.testing.assert_allclose(before[name], after[name], atol=1e-6)


def check_round_trip(model, path):
    """`.keras` save then load (no custom objects) gives the same outputs."""
    import keras

    size = model.inputs[0].shape[1]
    x = images(1, 2, size)
    before = model(x, training=False)
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    after = loaded(x, training=False)
    for name in before:
        np.testing.assert_allclose(np.asarray(before[name]), np.asarray(after[name]), atol=1e-6)
    return loaded


def outputs_in_a_fresh_process(paths: dict[str, Path], out: Path) -> dict[str, dict]:
    """Load each `.keras` file with plain Keras after `import tf_twohead` in a new
    process (one for all files), and return its outputs on `images(1)`, and under
    "parameters" the count the file's check (`keras_files.check`) declares."""
    code = """import json, sys
import numpy as np
import tf_twohead, keras
from tf_twohead.keras_files.check import check_keras_file
paths, out, size = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
x = np.random.default_rng(1).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
arrays = {}
for name, path in paths.items():
    arrays[f"{name}/parameters"] = np.array(check_keras_file(path))
    model = keras.saving.load_model(path, compile=False)
    for head, value in model(x, training=False).items():
        arrays[f"{name}/{head}"] = keras.ops.convert_to_numpy(value)
np.savez(out, **arrays)
"""
    names = json.dumps({k: str(v) for k, v in paths.items()})
    done = subprocess.run([sys.executable, "-c", code, names, str(out), str(SIZE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, dict] = {}
    with np.load(out) as arrays:
        for key in arrays.files:
            name, head = key.split("/")
            found.setdefault(name, {})[head] = arrays[key]
    return found


def check_tflite_parity(model, names, tmp_path, atol=1e-4):
    """The float32 `.tflite` has one `image` input, outputs named after the heads, and
    answers as the Keras model does."""
    from ai_edge_litert.interpreter import Interpreter

    from tf_twohead.export import serving

    flatbuffer = serving.convert_saved_model(serving.write_serving_model(model, tmp_path / "sm"))
    interpreter = Interpreter(model_content=flatbuffer)
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == ["image"] and sorted(signature["outputs"]) == sorted(names)
    runner = interpreter.get_signature_runner()
    x = images(3, 1, model.inputs[0].shape[1])
    lite, ours = runner(image=x), numpy_outputs(model, x)
    for name in names:
        np.testing.assert_allclose(lite[name], ours[name], atol=atol)
