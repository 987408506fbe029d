"""Checks every model must pass (DESIGN.md 3.6): names, shapes, dtype, save/load."""

from __future__ import annotations

import numpy as np


def check_outputs(model, names, widths, batch=2):
    """Outputs are a dict with exactly `names`, shaped `(batch, width)`, in [0, 1]."""
    size = model.inputs[0].shape[1]
    assert model.inputs[0].dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    out = model(x, training=False)
    assert isinstance(out, dict)
    assert sorted(out) == sorted(names)
    for name, width in zip(names, widths):
        assert tuple(out[name].shape) == (batch, width)
        values = np.asarray(out[name])
        assert np.all((values >= 0) & (values <= 1))
    return x, out


def check_round_trip(model, path):
    """`.keras` save then load (no custom objects) gives the same outputs."""
    import keras

    size = model.inputs[0].shape[1]
    x = np.random.default_rng(1).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    before = model(x, training=False)
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    after = loaded(x, training=False)
    for name in before:
        np.testing.assert_allclose(np.asarray(before[name]), np.asarray(after[name]), atol=1e-6)
    return loaded
