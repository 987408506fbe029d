"""Independent questions, partly answered: the per-head CSV layout, the masked loss and
metrics, and adding a head to a trained model (`model.init_from`)."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import FOLDERS, SHALLOW, write_image

import tf_twohead as tt
from tf_twohead import cli
from tf_twohead.core.defaults import UNKNOWN
from tf_twohead.core.errors import DataError
from tf_twohead.data.splits import read_split
from tf_twohead.data.targets import head_answers
from tf_twohead.recipe.masked import MaskedBinaryCrossentropy, head_metrics

HEADS = ("screen", "blurry")


def write_head_dataset(root, rows_per_split=12, unknown_every=3, size=40,
                       heads=HEADS):
    """Images whose colour answers `screen` (blue) and `blurry` (bright), with some
    answers left empty: every `unknown_every`-th row misses one head's answer."""
    for s, split in enumerate(("train", "val", "test")):
        lines = [",".join(("path", *heads))]
        for i in range(rows_per_split):
            screen, blurry = i % 2, (i // 2) % 2
            rel = f"{FOLDERS[2 * screen]}/{split} {i}.jpg"
            write_image(root / rel, size, seed=100 * s + i, class_id=2 * screen)
            cells = {"screen": str(screen), "blurry": str(blurry), "face": str(1 - screen)}
            if i % unknown_every == 1:
                cells[heads[i % len(heads)]] = ""
            lines.append(",".join((rel, *(cells[h] for h in heads))))
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def head_config(tmp_path, root, *overrides, heads=HEADS):
    return tt.load_config("configs/two_head.yaml", [
        f"data.root={root}", "data.img_size=32", f"output_dir={tmp_path / 'runs'}",
        "model.head_width=16", SHALLOW, "train.epochs=2", "train.batch_size=8",
        "data.rotation=0", f"model.heads={{{', '.join(f'{h}: []' for h in heads)}}}",
        f"train.monitor_head={heads[0]}", "train.loss_weights={}", *overrides])


# --- the layout ---------------------------------------------------------------------

def test_the_layout_is_read_from_the_header_with_every_spelling_of_an_answer(tmp_path):
    root = tmp_path / "ds"
    for i in range(8):
        write_image(root / f"a/{i}.jpg", seed=i)
    (root / "train.csv").write_text(
        "path,screen,blurry\n"
        "a/0.jpg,1,0\n a/1.jpg , true , NO \na/2.jpg,yes,\na/3.jpg,False,-1\n"
        "a/4.jpg,?,1\n\na/5.jpg,0,1\n")
    rows, problems = read_split(root / "train.csv", 3, heads=["blurry", "screen"])
    assert problems == [] and rows.lines == [2, 3, 4, 5, 6, 8]
    answers = head_answers(rows, {"screen": [], "blurry": []})
    np.testing.assert_array_equal(answers["screen"], [1, 1, 1, 0, UNKNOWN, 0])
    np.testing.assert_array_equal(answers["blurry"], [0, 0, UNKNOWN, UNKNOWN, 1, 1])
    assert (rows.class_ids == -1).all()
    # The class-id layout keeps working, with or without a header of its own.
    (root / "val.csv").write_text("path,class_id\na/0.jpg,2\n")
    rows, _ = read_split(root / "val.csv", 3, heads=["screen"])
    assert rows.answers is None and list(rows.class_ids) == [2]


def test_every_bad_cell_joins_the_one_report_with_file_and_line(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write_image(root / f"a/{i}.jpg", seed=i)
    (root / "train.csv").write_text("path,screen,blurry\na/0.jpg,1,0\na/1.jpg,2,0\n"
                                    "a/2.jpg,1,maybe\na/3.jpg,1\na/none.jpg,0,0\n")
    rows, problems = read_split(root / "train.csv", 3, heads=["screen", "blurry"])
    assert len(rows) == 1
    found = {(p.line, p.reason) for p in problems}
    assert found == {(3, "bad label"), (4, "bad label"), (5, "malformed row"),
                     (6, "missing file")}
    bad = {p.line: str(p) for p in problems}
    assert "column 'screen': '2' is not 1, 0" in bad[3] and "train.csv:3:" in bad[3]
    assert "column 'blurry': 'maybe'" in bad[4]


@pytest.mark.parametrize("header, why", [
    ("path,screen", "heads without a column: blurry"),
    ("path,screen,blurry,face", "columns that are not heads: face"),
    ("path,screen,screen,blurry", "columns named twice: screen"),
])
def test_heads_the_csv_lacks_or_adds_are_one_error_before_tensorflow(tmp_path, header, why):
    root = tmp_path / "ds"
    write_image(root / "a/0.jpg")
    for split in ("train", "val", "test"):
        cells = ",".join("1" for _ in header.split(",")[1:])
        (root / f"{split}.csv").write_text(f"{header}\na/0.jpg,{cells}\n")
    args = ["train", "--config", "configs/two_head.yaml", f"data.root={root}",
            "model.heads={screen: [], blurry: []}", "train.monitor_head=screen",
            "train.loss_weights={}"]
    code = ("import sys; from tf_twohead.cli import main; rc = main(sys.argv[1:]); "
            "print('loaded' if 'tensorflow' in sys.modules else 'not loaded', rc)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.stdout.split() == ["not", "loaded", "2"], done.stderr[-500:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "train.csv: its per-head columns" in err[0] and why in err[0]


def test_a_head_needs_both_answers_among_its_known_ones(tmp_path):
    root = write_head_dataset(tmp_path / "ds")
    text = (root / "val.csv").read_text().splitlines()
    text = [text[0]] + [",".join((line.split(",")[0], line.split(",")[1], "" if i % 2 else "0"))
                        for i, line in enumerate(text[1:])]
    (root / "val.csv").write_text("\n".join(text) + "\n")  # blurry: only "no" or unknown
    from tf_twohead.data.pipeline import checked_splits

    with pytest.raises(DataError, match=r"val split: head 'blurry' \(its column\) has no "
                       r"positive example among its 6 known answers \(12 images\)"):
        checked_splits(head_config(tmp_path, root), ("train", "val"), progress=False)


# --- the masked loss and metrics ----------------------------------------------------

def test_the_masked_loss_is_the_mean_over_known_answers(tmp_path):
    y = np.array([[1.0], [UNKNOWN], [0.0], [UNKNOWN]], np.float32)
    p = np.array([[0.8], [0.3], [0.4], [0.9]], np.float32)
    w = np.array([2.0, 5.0, 1.0, 1.0], np.float32)  # pos_weight-style sample weights
    loss = MaskedBinaryCrossentropy(label_smoothing=0.1)
    smooth = np.array([1 * 0.9 + 0.05, 0 * 0.9 + 0.05])
    by_hand = -(smooth * np.log([0.8, 0.4]) + (1 - smooth) * np.log([0.2, 0.6]))
    np.testing.assert_allclose(float(loss(y, p)), by_hand.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss(y, p, sample_weight=w)),
                               (2 * by_hand[0] + 1 * by_hand[1]) / 2, rtol=1e-5)
    # All known: Keras' own binary cross-entropy.
    known = np.array([[1.0], [0.0]], np.float32)
    np.testing.assert_allclose(
        float(loss(known, p[:2])),
        float(keras.losses.BinaryCrossentropy(label_smoothing=0.1)(known, p[:2])), rtol=1e-6)


def test_a_batch_without_known_answers_adds_zero_and_no_gradient():
    import tensorflow as tf

    logits = tf.Variable([[0.3], [-1.2]])
    with tf.GradientTape() as tape:
        value = MaskedBinaryCrossentropy()(tf.constant([[UNKNOWN], [UNKNOWN]]),
                                           tf.sigmoid(logits))
    grad = tape.gradient(value, logits)
    assert float(value) == 0.0 and np.isfinite(grad.numpy()).all()
    np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_head_metrics_count_known_answers_only():
    y = np.array([[1.0], [0.0], [UNKNOWN], [1.0], [UNKNOWN]], np.float32)
    p = np.array([[0.9], [0.8], [0.9], [0.2], [0.1]], np.float32)
    got = {}
    for metric in head_metrics():
        metric.update_state(y, p)
        got[metric.name] = float(metric.result())
    keep = [0, 1, 3]
    for metric in (keras.metrics.Precision(thresholds=0.5), keras.metrics.Recall(thresholds=0.5),
                   keras.metrics.F1Score(average="micro", threshold=0.5), keras.metrics.AUC()):
        metric.update_state(y[keep], p[keep])
        name = {"precision": "precision", "recall": "recall", "f1_score": "f1",
                "auc": "auc"}[metric.name]
        assert got[name] == pytest.approx(float(metric.result()), abs=1e-6), name
    assert got["precision"] == 0.5 and got["recall"] == 0.5  # not 1/3 and 1/2


# --- adding a head later -------------------------------------------------------------

@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A trained-looking two-head model (screen, blurry) saved as a run's best.keras."""
    from tf_twohead import models

    keras.utils.set_random_seed(1)
    model = models.build("two_head", 32, head_width=16, heads=list(HEADS),
                         stage_repeats=(1, 1, 1))
    for layer in model.layers:  # move every weight off its initial value
        layer.set_weights([w + 0.01 for w in layer.get_weights()])
    run = tmp_path_factory.mktemp("old") / "run"
    run.mkdir()
    model.save(run / "best.keras")
    return run, model


def test_init_from_loads_matching_heads_exactly_and_starts_new_ones_fresh(tmp_path, two_heads):
    from tf_twohead.pretrained.load import build_model

    run, old = two_heads
    heads = ("screen", "blurry", "face")
    cfg = head_config(tmp_path, tmp_path, f"model.init_from={run}", heads=heads)
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    fresh = build_model(head_config(tmp_path, tmp_path, heads=heads))
    for layer in model.layers:
        if not layer.weights:
            continue
        want = (fresh if layer.name.startswith("face") else old).get_layer(layer.name)
        for mine, theirs in zip(layer.get_weights(), want.get_weights()):
            np.testing.assert_array_equal(mine, theirs, err_msg=layer.name)


def test_init_from_refuses_a_dropped_head_a_misfit_and_its_own_folder(tmp_path, two_heads):
    from tf_twohead.pretrained.load import build_model

    run, _ = two_heads
    with pytest.raises(tt.WeightsError, match="answers blurry, which this config leaves out: "
                       "list them in model.drop_heads"):
        build_model(head_config(tmp_path, tmp_path, f"model.init_from={run}", heads=("screen",)))
    cfg = head_config(tmp_path, tmp_path, f"model.init_from={run}", "model.drop_heads=[blurry]",
                      heads=("screen",))
    assert build_model(cfg).output_names == ["screen"]
    with pytest.raises(tt.WeightsError, match="does not fit this model .*main_conv|screen_conv"):
        build_model(head_config(tmp_path, tmp_path, f"model.init_from={run}",
                                "model.head_width=8"))
    from tf_twohead.pretrained.warm_start import source_of

    with pytest.raises(tt.ConfigError, match="is inside .* the folder this run writes"):
        source_of(str(run), run)
    with pytest.raises(tt.ConfigError, match="model.init_from"):
        tt.load_config(None, [f"model.init_from={run}", "model.pretrained=imagenet"])
    assert cli.main(["train", "--config", "two_head", f"model.init_from={tmp_path}/nothing"]) == 2


# --- the whole flow --------------------------------------------------------------------

@pytest.mark.slow
def test_a_partly_answered_dataset_through_train_evaluate_convert_predict_audit(tmp_path,
                                                                                capsys):
    root = write_head_dataset(tmp_path / "ds", rows_per_split=16)
    cfg = head_config(tmp_path, root)
    state = tt.train(cfg)
    out = capsys.readouterr().out
    assert "screen+/known" in out and " 8/14 " in out  # train: 8 yes of 14 known (16 rows)
    assert state["monitor"] == "val_screen_f1"

    result = tt.evaluate(cfg.run_dir, latency_images=2, progress=False)
    test_rows, _ = read_split(root / "test.csv", 3, heads=list(HEADS))
    answers = head_answers(test_rows, dict.fromkeys(HEADS, []))
    for head in HEADS:
        assert result["heads"][head]["support"] == int((answers[head] != UNKNOWN).sum()) < 16
    assert "| known |" in (cfg.run_dir / "report.md").read_text()

    converted = tt.to_tflite(cfg.run_dir, "none", progress=False)
    assert converted["parity"]["passed"] and set(converted["metadata"]["outputs"]) == set(HEADS)
    image = root / test_rows.paths[0]
    assert cli.main(["predict", converted["path"], str(image)]) == 0
    line = capsys.readouterr().out
    assert "screen: " in line and "blurry: " in line  # every head answers

    audit = tt.audit(root, folds=2, epochs=1, img_size=32, progress=False, overrides=[
        f"data.cache_dir={tmp_path / 'cache'}", SHALLOW, "train.batch_size=8"])
    assert list(audit.model_quality["audit"]) == list(HEADS)  # no class audit: no class ids
    assert {"given_screen", "given_blurry", "score"} <= set(audit.label_issues.columns)
    assert "The models that judged the labels" in audit.summary

    # Add a head later: the old images keep their answers, new ones answer the new head.
    more = write_head_dataset(tmp_path / "ds3", rows_per_split=16,
                              heads=("screen", "blurry", "face"))
    grown = head_config(tmp_path, more, f"model.init_from={cfg.run_dir}", "exp=grown",
                        "train.epochs=1", heads=("screen", "blurry", "face"))
    tt.train(grown, verbose=0)
    model = tt.load_model(grown.run_dir / "best.keras")
    assert sorted(model.output_names) == ["blurry", "face", "screen"]
