"""The training recipe: compile a model with its losses, loss weights, metrics and
optimizer by head name, and the learning-rate schedules.

The recipe is the PyTorch reference's (docs/recipe.md): binary cross-entropy with label
smoothing per head, `loss_weights` main 2 / aux 1, Adam as PyTorch defines it, and a
step schedule (or fastai's one-cycle for the combined model's recipe).

Example (your own script):

>>> model = compile_model(tt.build_model(cfg), cfg)
>>> train_ds, val_ds = tt.make_datasets(cfg)
>>> model.fit(train_ds, validation_data=val_ds, epochs=3)
"""

from __future__ import annotations

import keras

from tf_twohead.config import Config
from tf_twohead.core.api import public
from tf_twohead.core.defaults import SOFTMAX_OUTPUT
from tf_twohead.recipe.masked import MaskedBinaryCrossentropy, head_metrics
from tf_twohead.recipe.metrics import class_metrics, softmax_head_metrics
from tf_twohead.recipe.optimizers import OneCycle, TorchAdam


@public
def compile_model(model: keras.Model, cfg: Config, total_steps: int | None = None,
                  heads: dict[str, list[int]] | None = None) -> keras.Model:
    """Compile with the reference recipe: per-head losses, weights and metrics by name.

    Two-head: binary cross-entropy with label smoothing per head, over the rows whose
    answer is known (`recipe.masked`), `loss_weights` from the config (main 2, aux 1),
    precision/recall/F1/AUC per head over known answers. A model whose one
    output is "probs" (softmax, combined, a combined run's encoder stages): categorical
    cross-entropy with the same smoothing, class `accuracy` and `top5`, and each head's
    metrics read from the class probabilities. Adam as PyTorch defines it
    (`TorchAdam`): `train.learning_rate`, `train.adam_epsilon`, and
    `train.weight_decay` applied as `train.weight_decay_mode` says.

    Args:
        model: keras.Model. Built by `models`.
        cfg: `Config`.
        total_steps: int or None. Steps of this fit, for `train.schedule=one_cycle`
            (a cycle over exactly these steps); unused by the step schedule.
        heads: dict or None. Head name -> positive class ids; None: `model.heads`
            (a combined run's coarse stage has no heads: `{}`).
    """
    t = cfg.train
    heads = dict(cfg.model.heads if heads is None else heads)
    optimizer = TorchAdam(learning_rate(cfg, total_steps), epsilon=t.adam_epsilon,
                          weight_decay=t.weight_decay or None,
                          weight_decay_mode=t.weight_decay_mode)
    if list(model.output_names) == [SOFTMAX_OUTPUT]:
        classes = int(model.get_layer(SOFTMAX_OUTPUT).output.shape[-1])
        metrics = {SOFTMAX_OUTPUT: class_metrics(classes) + softmax_head_metrics(heads)}
        model.compile(
            optimizer=optimizer,
            loss={SOFTMAX_OUTPUT: keras.losses.CategoricalCrossentropy(
                label_smoothing=t.label_smoothing)},
            metrics=metrics,
        )
    else:
        # One output: Keras logs its metrics unprefixed; name them `<head>_f1` as always.
        metrics = {h: head_metrics(f"{h}_" if len(heads) == 1 else "") for h in heads}
        model.compile(
            optimizer=optimizer,
            # Keras' binary cross-entropy over the known labels (all of them in the
            # class-id layout): an unknown answer trains nothing (recipe.masked).
            loss={h: MaskedBinaryCrossentropy(label_smoothing=t.label_smoothing)
                  for h in heads},
            loss_weights={h: float(t.loss_weights.get(h, 1.0)) for h in heads},
            metrics=metrics,
        )
    _build_state(model, metrics)
    return model


def learning_rate(cfg: Config, total_steps: int | None = None):
    """`train.learning_rate` (the step schedule's start), or a `OneCycle` over
    `total_steps` peaking at it for `train.schedule=one_cycle`."""
    t = cfg.train
    if t.schedule == "step":
        return t.learning_rate
    if not total_steps:
        raise ValueError("train.schedule=one_cycle needs the number of training steps. "
                         f"Received: total_steps={total_steps}")
    return OneCycle(t.learning_rate, total_steps, t.pct_start, t.div, t.div_final)


def _build_state(model: keras.Model, metrics: dict) -> None:
    """Create the optimizer's and the metrics' variables now, eagerly.

    Adam's moments and F1Score's counters are otherwise created lazily, inside the first
    trace of the training step, and TensorFlow then traces the whole step a second time
    (about 5 s at 64 px on 2 cores). One throw-away update builds each metric.
    """
    model.optimizer.build(model.trainable_variables)
    for name, head_metrics_ in metrics.items():
        width = model.get_layer(name).output.shape[-1]
        zeros = keras.ops.zeros((1, width))
        for metric in head_metrics_:
            metric.update_state(zeros, zeros)
            metric.reset_state()


def step_decay(cfg: Config):
    """The reference schedule: multiply the learning rate by `lr_gamma` every `lr_step_epochs`."""
    t = cfg.train

    def schedule(epoch, lr=None):
        return float(t.learning_rate * t.lr_gamma ** (epoch // max(1, t.lr_step_epochs)))

    return schedule


def schedule_callbacks(cfg: Config) -> list:
    """The step schedule is a per-epoch callback; one_cycle lives in the optimizer."""
    if cfg.train.schedule == "step":
        return [keras.callbacks.LearningRateScheduler(step_decay(cfg))]
    return []
