"""Unknown answers: a head's loss and metrics over its known labels only.

A row may answer some questions and not others (a per-head CSV's empty cell). Its
target for an unanswered head is `UNKNOWN` (-1): that head's loss is the mean over the
rows of the batch whose label is known, so an unknown adds no loss and no gradient, and
a batch with no known label for a head adds 0 for it, never NaN. Sample weights
(`train.pos_weight`) and label smoothing keep their meaning. With every label known the
loss is Keras' `BinaryCrossentropy` exactly, so every sigmoid head trains through here.

The metrics are Keras' own, counting only rows with a known label (a sample weight of
0 for the others), so `val_main_f1` and the best checkpoint follow known labels only.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_twohead.core.decisions import DEFAULT_THRESHOLD


def _known(y_true):
    """`(targets with unknowns as 0, a float mask of known rows of shape (B,))`."""
    known = ops.cast(ops.greater_equal(y_true, 0), "float32")
    return ops.multiply(ops.cast(y_true, "float32"), known), ops.min(known, axis=-1)


@keras.saving.register_keras_serializable(package="tf_twohead")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy averaged over the rows whose target is known (not `UNKNOWN`).

    Args:
        label_smoothing: float. As Keras' `BinaryCrossentropy`. Defaults to 0.

    Example:

    >>> loss = MaskedBinaryCrossentropy()
    >>> float(loss([[1.0], [-1.0]], [[0.9], [0.2]]))  # the unknown second row counts for nothing
    0.105...
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "binary_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true, known = _known(y_true)  # unknowns become 0: finite loss, then weighted 0
        losses = keras.losses.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred,
                                                  label_smoothing=self.label_smoothing)
        # Keras divides the sum by the batch size; scaling each known row by
        # batch / known makes that the mean over known rows (0 when none is known), as
        # Keras' own masks do.
        known = ops.cast(known, losses.dtype)
        batch = ops.cast(ops.shape(known)[0], losses.dtype)
        return losses * known * ops.divide_no_nan(batch, ops.sum(known))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class _KnownLabels:
    """Mixin for Keras' metrics: rows with an `UNKNOWN` target get a sample weight of 0."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, known = _known(y_true)
        if sample_weight is not None:
            known = known * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        # (B,) weights: F1Score expands them to (B, 1) itself.
        return super().update_state(y_true, y_pred, sample_weight=known)


@keras.saving.register_keras_serializable(package="tf_twohead")
class MaskedPrecision(_KnownLabels, keras.metrics.Precision):
    """Precision over the rows whose label is known."""


@keras.saving.register_keras_serializable(package="tf_twohead")
class MaskedRecall(_KnownLabels, keras.metrics.Recall):
    """Recall over the rows whose label is known."""


@keras.saving.register_keras_serializable(package="tf_twohead")
class MaskedF1Score(_KnownLabels, keras.metrics.F1Score):
    """F1 over the rows whose label is known."""


@keras.saving.register_keras_serializable(package="tf_twohead")
class MaskedAUC(_KnownLabels, keras.metrics.AUC):
    """ROC AUC over the rows whose label is known."""


def head_metrics(prefix: str = "") -> list[keras.metrics.Metric]:
    """Precision, recall, F1 (at `DEFAULT_THRESHOLD`) and AUC of one sigmoid head, over
    its known labels, named `<prefix>f1`, ... (Keras adds the output's name itself
    only when a model has several outputs)."""
    return [
        MaskedPrecision(thresholds=DEFAULT_THRESHOLD, name=f"{prefix}precision"),
        MaskedRecall(thresholds=DEFAULT_THRESHOLD, name=f"{prefix}recall"),
        MaskedF1Score(average="micro", threshold=DEFAULT_THRESHOLD, name=f"{prefix}f1"),
        MaskedAUC(name=f"{prefix}auc"),
    ]
