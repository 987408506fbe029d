"""Every model kind passes the same shared checks (`model_checks`): outputs, config round
trip, `.keras` save and load in a fresh process, TFLite parity."""

from __future__ import annotations

import numpy as np
import pytest
from model_checks import (
    KINDS,
    build_kind,
    check_config_round_trip,
    check_outputs,
    check_tflite_parity,
    images,
    numpy_outputs,
    outputs_in_a_fresh_process,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each kind built once, saved, and loaded back in one fresh process."""
    folder = tmp_path_factory.mktemp("kinds")
    built = {name: build_kind(name) for name in KINDS}
    paths = {name: folder / f"{name}.keras" for name in KINDS}
    for name, model in built.items():
        model.save(paths[name])
    return built, outputs_in_a_fresh_process(paths, folder / "outputs.npz")


@pytest.mark.parametrize("kind", list(KINDS))
def test_outputs_config_and_keras_round_trip(kind, saved):
    built, reloaded = saved
    model, (_, names, widths) = built[kind], KINDS[kind]
    check_outputs(model, names, widths)
    check_config_round_trip(model)
    here = numpy_outputs(model, images(1))
    assert int(reloaded[kind].pop("parameters")) == model.count_params()
    assert sorted(reloaded[kind]) == sorted(names)
    for name in names:
        np.testing.assert_allclose(reloaded[kind][name], here[name], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_tflite_has_named_outputs_and_matches_keras(kind, saved, tmp_path):
    built, _ = saved
    check_tflite_parity(built[kind], KINDS[kind][1], tmp_path)
