import numpy as np
import pytest

from tf_twohead import models
from tf_twohead.evaluation import binary_metrics, compare, threshold_for_precision
from tf_twohead.inference import Predictor


def test_binary_metrics_known_values():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.1, 0.0])
    m = binary_metrics(truth, scores, scores >= 0.5, 0.5)
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
