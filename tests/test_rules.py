"""One home for each decision: the threshold and the softmax rule, the pixel limit, the
audit's argument checks (the library and the command line refuse the same values)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_dataset

import tf_twohead as tt
from tf_twohead import cli
from tf_twohead.config import load_config
from tf_twohead.core import decisions, defaults
from tf_twohead.inference import metadata


def test_sigmoid_heads_default_to_one_threshold_and_softmax_heads_to_argmax():
    assert decisions.default_threshold("two_head") == decisions.DEFAULT_THRESHOLD == 0.5
    assert decisions.default_threshold("softmax") is None
    assert decisions.default_threshold("combined") is None
    scores = np.array([0.2, 0.5, 0.9])
    assert decisions.decide(scores, 0.5).tolist() == [False, True, True]
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    assert decisions.decide(probs[:, 2], None, probs, [2]).tolist() == [False, True]


def test_the_exported_metadata_uses_the_same_defaults(tmp_path):
    heads = {"main": [2], "aux": [1]}
    names = ["document", "not a document", "screen"]
    source = tmp_path / "best.keras"
    source.write_bytes(b"x")
    sig = metadata.describe("two_head", ["aux", "main"], heads, names, 32, "none", source)
    soft = metadata.describe("softmax", ["probs"], heads, names, 32, "none", source)
    assert {h["threshold"] for h in sig["heads"].values()} == {decisions.DEFAULT_THRESHOLD}
    assert {h["threshold"] for h in soft["heads"].values()} == {None}


def test_the_pixel_limit_has_one_default():
    assert load_config(None).data.max_image_pixels == defaults.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("kwargs, flag", [
    ({"threshold": 40}, "--threshold"), ({"min_similarity": 1.5}, "--min-similarity"),
    ({"per_image": 0}, "--per-image"), ({"folds": 1}, "--folds"),
    ({"drop_label_issues": True}, "--drop-label-issues")])
def test_the_audit_refuses_the_same_arguments_in_the_library_and_the_cli(
        tmp_path, capsys, kwargs, flag):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2))
    with pytest.raises(tt.TwoHeadError, match=flag):
        tt.audit(root, progress=False, **kwargs)
    argv = {"threshold": ["--threshold", "40"], "min_similarity": ["--min-similarity", "1.5"],
            "per_image": ["--per-image", "0"], "folds": ["--folds", "1"],
            "drop_label_issues": ["--drop-label-issues"]}[next(iter(kwargs))]
    assert cli.main(["data", "audit", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1
    assert not (root / "audit").exists()  # refused before anything was read or written
