"""Keras training metrics per head, with the same names for every kind of model.

A multi-head model gets Keras' built-in metrics per output over its known answers
(`recipe.masked.head_metrics`), logged as `main_f1`, `aux_auc`, ... The softmax
baseline has one output, so its metrics look at the task of each head through the class
probabilities: the head's decision is "argmax is one of its positive class ids", its
score the sum of those probabilities. They are named `main_f1`, `aux_auc`, ... too, so
`val_main_f1` picks the best checkpoint of either.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_twohead.core.decisions import DEFAULT_THRESHOLD
from tf_twohead.core.defaults import TOP_K, class_metric_names


class _SoftmaxHeadView:
    """Mixin: turn one-hot targets and class probabilities into one head's task."""

    def __init__(self, positive_ids, **kwargs):
        super().__init__(**kwargs)
        self.positive_ids = [int(i) for i in positive_ids]

    def _view(self, y_true, y_pred):
        ids = ops.convert_to_tensor(self.positive_ids, dtype="int32")
        truth = ops.sum(ops.take(y_true, ids, axis=-1), axis=-1, keepdims=True)
        if self.uses_scores:
            pred = ops.sum(ops.take(y_pred, ids, axis=-1), axis=-1, keepdims=True)
        else:
            winner = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
            hit = ops.any(ops.equal(winner[:, None], ids[None, :]), axis=-1, keepdims=True)
            pred = ops.cast(hit, y_pred.dtype)
        return truth, pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth, pred = self._view(y_true, y_pred)
        return super().update_state(truth, pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "positive_ids": self.positive_ids}


@keras.saving.register_keras_serializable(package="tf_twohead")
class SoftmaxHeadPrecision(_SoftmaxHeadView, keras.metrics.Precision):
    """Precision of a head's task read from softmax probabilities (argmax decision)."""

    uses_scores = False


@keras.saving.register_keras_serializable(package="tf_twohead")
class SoftmaxHeadRecall(_SoftmaxHeadView, keras.metrics.Recall):
    """Recall of a head's task read from softmax probabilities (argmax decision)."""

    uses_scores = False


@keras.saving.register_keras_serializable(package="tf_twohead")
class SoftmaxHeadF1(_SoftmaxHeadView, keras.metrics.F1Score):
    """F1 of a head's task read from softmax probabilities (argmax decision)."""

    uses_scores = False


@keras.saving.register_keras_serializable(package="tf_twohead")
class SoftmaxHeadAUC(_SoftmaxHeadView, keras.metrics.AUC):
    """ROC AUC of a head's task, scored by the sum of its positive class probabilities."""

    uses_scores = True


def softmax_head_metrics(heads: dict[str, list[int]]) -> list[keras.metrics.Metric]:
    """Per-head metrics of the softmax baseline, named `<head>_<metric>`."""
    out = []
    for head, ids in heads.items():
        out += [
            SoftmaxHeadPrecision(ids, name=f"{head}_precision"),
            SoftmaxHeadRecall(ids, name=f"{head}_recall"),
            SoftmaxHeadF1(ids, average="micro", threshold=DEFAULT_THRESHOLD, name=f"{head}_f1"),
            SoftmaxHeadAUC(ids, name=f"{head}_auc"),
        ]
    return out


def class_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """Accuracy over the classes of a softmax output, and top-5 accuracy when there are
    more than 5 classes (logged as `accuracy`, `top5`)."""
    out = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if "top5" in class_metric_names(num_classes):
        out.append(keras.metrics.TopKCategoricalAccuracy(k=TOP_K, name="top5"))
    return out
