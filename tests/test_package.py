"""The package as a whole: a cheap import that still registers every Keras class, a
public API whose names resolve, and import contracts that hold and can fail."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tf_twohead as tt
from tf_twohead import config, models
from tf_twohead.core import api
from tf_twohead.recipe import compiling as recipe

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "keras_tuner")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("module", ["tf_twohead", "tf_twohead.config", "tf_twohead.core.run_folder",
                                    "tf_twohead.training.resume", "tf_twohead.evaluation.compare",
                                    "tf_twohead.inference.metadata", "tf_twohead.inference.files",
                                    "tf_twohead.inference.onnx_runner",
                                    "tf_twohead.tuning.results", "tf_twohead.cli",
                                    "tf_twohead.cli.clean"])
def test_light_imports_load_no_tensorflow_keras_or_keras_tuner(module):
    done = run_python(f"import sys, {module}; "
                      f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.stdout.strip() == "[]"


def compiled(model, cfg):
    """`model` compiled with the run's recipe, its optimizer built: a save with state."""
    return recipe.compile_model(model, cfg, total_steps=10)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """One `.keras` of each kind, saved with optimizer state (TorchAdam, OneCycle, the
    softmax head metrics), as `last.keras` is."""
    out = tmp_path_factory.mktemp("saved")
    cfg = config.load_config(None, ["data.img_size=32", "model.head_width=8"])
    one_cycle = config.with_values(cfg, {"train.schedule": "one_cycle"})
    builds = {
        "two_head": (models.build("two_head", 32, head_width=8), cfg),
        "softmax": (models.build("softmax", 32, head_width=8), one_cycle),
        "mobilenet": (models.build("two_head", 32, 1.0, head_width=8,
                                   backbone="mobilenet_v3_small"), cfg),
        "combined": (models.build("combined", 32, head_width=8), one_cycle),
    }
    paths = {}
    for name, (model, model_cfg) in builds.items():
        paths[name] = out / f"{name}.keras"
        compiled(model, model_cfg).save(paths[name])
    return paths


def test_import_tf_twohead_after_keras_is_enough_to_load_every_kind(saved_models):
    # A fresh process, plain Keras: `import tf_twohead` registers the package's classes at
    # once when Keras was imported before it. (Keras imported after it: the shared model
    # case, tests/test_model_kinds.py, and the flat-layout file below load that way.)
    code = """import keras; import tf_twohead
import sys, numpy as np
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)  # compile=True: optimizer and metrics too
    out = model.predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0)
    print(path.rsplit("/", 1)[-1], type(model.optimizer).__name__,
          sorted((k, v.shape) for k, v in out.items()))
"""
    lines = run_python(code, *map(str, saved_models.values())).stdout.strip().splitlines()
    assert lines == [
        "two_head.keras TorchAdam [('aux', (2, 1)), ('main', (2, 1))]",
        "softmax.keras TorchAdam [('probs', (2, 3))]",
        "mobilenet.keras TorchAdam [('aux', (2, 1)), ('main', (2, 1))]",
        "combined.keras TorchAdam [('probs', (2, 3))]",
    ]


def test_load_model_keeps_the_optimizer_state(saved_models):
    model = tt.load_model(saved_models["combined"], compile=True)
    assert isinstance(model.optimizer._learning_rate, tt.OneCycle)  # the schedule itself
    x = np.zeros((1, 32, 32, 3), np.uint8)
    assert model.predict(x, verbose=0)["probs"].shape == (1, 3)


def test_every_public_name_resolves_under_its_own_name():
    for name in tt.__all__:
        value = getattr(tt, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__name__ == name, f"tt.{name} is defined as {value.__name__}"
    for error in ("ConfigError", "DataError", "WeightsError", "ExportError", "ParityError",
                  "RunExistsError", "TorchFileError"):
        assert issubclass(getattr(tt, error), tt.TwoHeadError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tt.nope  # noqa: B018


def test_public_names_and_keras_classes_come_from_their_declarations():
    # No hand-kept list: `@public` where a name is defined, Keras' own registration
    # decorator where a class is; both read from the source without importing it.
    names = api.public_names()
    assert {"train", "evaluate", "to_tflite", "Predictor", "load_model", "Config",
            "TwoHeadError", "audit", "tune"} <= set(names)
    for name, module in names.items():
        assert getattr(importlib.import_module(module), name).__tf_twohead_public__
    assert set(api.serializable_modules()) == {
        "tf_twohead.models.batchnorm", "tf_twohead.recipe.masked", "tf_twohead.recipe.metrics",
        "tf_twohead.recipe.optimizers"}
    import keras

    for cls in ("FusedBatchNormalization", "TorchAdam", "OneCycle", "SoftmaxHeadF1"):
        assert keras.saving.get_registered_object(f"tf_twohead>{cls}") is not None


def test_a_keras_file_from_the_flat_layout_still_loads(saved_models, tmp_path):
    # The release before the lifecycle packages saved its classes from tf_twohead.optimizers
    # and tf_twohead.metrics: Keras finds them by registered name, wherever they live now.
    old = tmp_path / "old_layout.keras"
    with zipfile.ZipFile(saved_models["softmax"]) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                text = data.decode()
                assert "tf_twohead.recipe.optimizers" in text
                assert "tf_twohead.recipe.metrics" in text
                data = (text.replace("tf_twohead.recipe.optimizers", "tf_twohead.optimizers")
                        .replace("tf_twohead.recipe.metrics", "tf_twohead.metrics").encode())
            dst.writestr(item, data)
    code = """import sys, numpy as np, tf_twohead as tt
model = tt.load_model(sys.argv[1], compile=True)
print(type(model.optimizer).__name__, type(model.optimizer._learning_rate).__name__,
      model.predict(np.zeros((1, 32, 32, 3), np.uint8), verbose=0)["probs"].shape)
"""
    done = run_python(code, str(old))
    assert done.stdout.split()[:2] == ["TorchAdam", "OneCycle"], done.stdout


def test_errors_keep_their_builtin_bases():
    # Code written against the old classes (ValueError, RuntimeError) still catches them.
    assert issubclass(tt.ConfigError, ValueError) and issubclass(tt.DataError, ValueError)
    assert issubclass(tt.RunExistsError, RuntimeError)
    assert issubclass(tt.ParityError, tt.ExportError)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), str(root / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=root,
                          env={"PATH": str(exe.parent), "PYTHONPATH": str(root)})


def test_import_contracts_hold_and_an_upward_import_breaks_them(tmp_path):
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    # A copy of the package with one import pointing up, hidden inside a function.
    shutil.copytree(ROOT / "tf_twohead", tmp_path / "tf_twohead",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "tf_twohead" / "models" / "heads.py", "a") as f:
        f.write("\n\ndef _upward():\n    from tf_twohead.training import run\n\n    return run\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "tf_twohead.models is not allowed to import tf_twohead.training" in broken.stdout
    assert "- tf_twohead.models.heads -> tf_twohead.training.run (l." in broken.stdout
