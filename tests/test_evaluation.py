import numpy as np
import pytest

from tf_twohead import models
from tf_twohead.evaluation.compare import compare
from tf_twohead.evaluation.scores import binary_scores, class_scores, threshold_for_precision
from tf_twohead.inference.predictor import Predictor


def test_binary_metrics_known_values():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.1, 0.0])
    m = binary_scores(truth, scores, scores >= 0.5, 0.5)
    assert (m["precision"], m["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["auc"] == pytest.approx(14 / 15)
    assert (m["positives"], m["support"], m["threshold"]) == (3, 8, 0.5)


def test_threshold_for_target_precision_maximises_recall():
    truth = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.95, 0.9, 0.8, 0.6, 0.3, 0.1])
    assert threshold_for_precision(truth, scores, 1.0) == pytest.approx(0.9)
    assert threshold_for_precision(truth, scores, 0.75) == pytest.approx(0.6)
    assert threshold_for_precision(np.zeros(3), np.ones(3), 0.9) == 1.0


def test_softmax_predictor_answers_the_heads_questions(tmp_path):
    path = tmp_path / "soft.keras"
    models.build("softmax", 32, head_width=8).save(path)
    predictor = Predictor(path)
    assert predictor.kind == "softmax" and predictor.head_names == ["main", "aux"]
    probs = np.array([[0.2, 0.3, 0.5], [0.5, 0.4, 0.1], [0.3, 0.4, 0.3]])
    scores = predictor.head_scores({"probs": probs})
    np.testing.assert_allclose(scores["main"], [0.5, 0.1, 0.3])
    np.testing.assert_allclose(scores["aux"], [0.3, 0.4, 0.4])
    decisions = predictor.decisions(scores)  # argmax: screen = 2, not a document = 1
    assert decisions["main"].tolist() == [True, False, False]
    assert decisions["aux"].tolist() == [False, False, True]


def test_compare_needs_evaluated_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="tf-twohead evaluate"):
        compare([tmp_path])


def test_class_scores_accuracy_top5_and_per_class():
    names = [f"c{i}" for i in range(7)]
    truth = np.array([0, 1, 2, 3, 4, 5, 6, 0])
    probs = np.full((8, 7), 0.01)
    probs[np.arange(8), [0, 1, 2, 3, 4, 5, 0, 1]] = 0.9  # two wrong: 6 -> 0, 0 -> 1
    probs[6, 6] = 0.02  # class 6 is second choice for image 6
    probs[7, 0] = 0.001  # and image 7's true class is its last
    m = class_scores(truth, probs, names)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["top5"] == pytest.approx(7 / 8)
    assert m["per_class"]["c0"] == {"precision": 0.5, "recall": 0.5,
                                    "f1": pytest.approx(0.5), "support": 2}
    assert m["per_class"]["c6"]["recall"] == 0.0 and m["per_class"]["c1"]["precision"] == 0.5
    assert "top5" not in class_scores(truth[:3] % 3, probs[:3, :3], names[:3])
