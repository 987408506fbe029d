"""Adam as PyTorch defines it, applied with TensorFlow's fused Adam kernel.

The reference trains with `torch.optim.Adam(lr=1e-3, weight_decay=1e-4)`. Two details
differ from `keras.optimizers.Adam(weight_decay=...)`:

- PyTorch's `weight_decay` is an L2 term added to the gradient (`g + wd * w`) before the
  moments; Keras' is decoupled (AdamW: `w -= lr * wd * w`, outside the moments). With
  lr 1e-3 and wd 1e-4, the decoupled decay shrinks a weight by 1e-7 a step: next to
  nothing, while the L2 term pulls every weight whose gradient is small.
- PyTorch adds `eps` (1e-8) after dividing sqrt(v) by its bias correction; Keras adds
  its `epsilon` (1e-7) before. Passing `eps * sqrt(1 - beta_2**t)` to the kernel makes
  the update equal to PyTorch's.

Both behaviours are kept: `weight_decay_mode="l2"` (the reference) or "decoupled".
The update itself is one `ResourceApplyAdam` op per variable instead of about a dozen
small ops, which takes seconds off tracing the training step and some per-step overhead.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tf_twohead.core.api import public
from tf_twohead.core.defaults import WEIGHT_DECAY_MODES


@public
@keras.saving.register_keras_serializable(package="tf_twohead")
class TorchAdam(keras.optimizers.Adam):
    """`torch.optim.Adam` semantics (L2 weight decay, PyTorch's epsilon) in Keras.

    Args:
        learning_rate: float or schedule. Defaults to 1e-3.
        beta_1, beta_2: float. Moment decay rates. Default to 0.9 and 0.999.
        epsilon: float. PyTorch's eps. Defaults to 1e-8.
        weight_decay: float or None. Decay strength; None or 0 turns it off.
        weight_decay_mode: str. "l2": add `weight_decay * w` to the gradient (PyTorch's
            Adam); "decoupled": Keras' decoupled decay (PyTorch's AdamW). Defaults to "l2".
        **kwargs: other `keras.optimizers.Optimizer` arguments.

    Example:

    >>> model.compile(optimizer=TorchAdam(1e-3, weight_decay=1e-4), loss="mse")
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=None, weight_decay_mode="l2", name="torch_adam", **kwargs):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}. "
                             f"Received: weight_decay_mode={weight_decay_mode!r}")
        kwargs.pop("amsgrad", None)
        decoupled = weight_decay if weight_decay_mode == "decoupled" else None
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, weight_decay=decoupled or None, name=name, **kwargs)
        self.weight_decay_mode = weight_decay_mode
        self.l2 = float(weight_decay or 0.0) if weight_decay_mode == "l2" else 0.0
        self._scalars = None

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The bias-correction powers are the same for every variable: compute them once.
        step = ops.cast(self.iterations + 1, "float32")
        beta_1_power = ops.power(ops.cast(self.beta_1, "float32"), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, "float32"), step)
        epsilon = self.epsilon * ops.sqrt(1.0 - beta_2_power)
        self._scalars = (beta_1_power, beta_2_power, epsilon)
        try:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._scalars = None

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        if keras.backend.backend() != "tensorflow" or self._scalars is None:
            return self._generic_update(gradient, variable, learning_rate, m, v)
        import tensorflow as tf

        beta_1_power, beta_2_power, epsilon = self._scalars
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.cast(beta_1_power, dtype), beta2_power=tf.cast(beta_2_power, dtype),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(epsilon, dtype), grad=gradient)

    def _generic_update(self, gradient, variable, learning_rate, m, v):
        """The same update in backend-neutral ops (other backends)."""
        step = ops.cast(self.iterations + 1, variable.dtype)
        correction_1 = 1 - ops.power(ops.cast(self.beta_1, variable.dtype), step)
        correction_2 = 1 - ops.power(ops.cast(self.beta_2, variable.dtype), step)
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        denom = ops.sqrt(v) / ops.sqrt(correction_2) + self.epsilon
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr / correction_1 * m / denom)

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        decay = self.l2 if self.weight_decay_mode == "l2" else config.get("weight_decay")
        return {**config, "weight_decay": decay, "weight_decay_mode": self.weight_decay_mode}


@public
@keras.saving.register_keras_serializable(package="tf_twohead")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle learning rate, exactly: cosine up, then cosine down, per step.

    `fit_one_cycle` schedules `combined_cos(pct_start, max_lr / div, max_lr,
    max_lr / div_final)` over the training batches: for `pos = step / total_steps`,
    `start + (1 + cos(pi * (1 - p))) * (end - start) / 2` on each phase, warm-up
    included (Keras' `CosineDecay` warms up linearly, so it only approximates this).
    Keras evaluates it on `optimizer.iterations`, once per batch, as fastai does; a
    new cycle needs a new optimizer (its iterations start at 0). fastai also cycles
    Adam's beta_1 (0.95 -> 0.85 -> 0.95); this schedules the learning rate only.

    Args:
        max_lr: float. The peak learning rate.
        total_steps: int. Training steps (batches) of the whole cycle.
        pct_start: float. Fraction of the steps spent warming up. Defaults to 0.25.
        div: float. The first learning rate is `max_lr / div`. Defaults to 25.
        div_final: float. The last one is `max_lr / div_final`. Defaults to 1e5.

    Example:

    >>> schedule = OneCycle(1e-3, total_steps=100)
    >>> [f"{float(schedule(step)):.0e}" for step in (0, 25, 100)]
    ['4e-05', '1e-03', '1e-08']
    """

    def __init__(self, max_lr, total_steps, pct_start=0.25, div=25.0, div_final=1e5):
        if int(total_steps) < 1 or not 0 < float(pct_start) < 1:
            raise ValueError(f"OneCycle needs total_steps >= 1 and 0 < pct_start < 1. "
                             f"Received: total_steps={total_steps}, pct_start={pct_start}")
        self.max_lr, self.total_steps = float(max_lr), int(total_steps)
        self.pct_start, self.div, self.div_final = float(pct_start), float(div), float(div_final)

    def __call__(self, step):
        pos = ops.clip(ops.cast(step, "float32") / self.total_steps, 0.0, 1.0)
        start, peak, end = self.max_lr / self.div, self.max_lr, self.max_lr / self.div_final
        warm = _cosine(start, peak, pos / self.pct_start)
        anneal = _cosine(peak, end, (pos - self.pct_start) / (1.0 - self.pct_start))
        return ops.where(pos < self.pct_start, warm, anneal)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div": self.div, "div_final": self.div_final}


def _cosine(start: float, end: float, pos):
    """fastai's `sched_cos`: from `start` at pos 0 to `end` at pos 1, cosine-shaped.

    The same value is computed from the smaller end (`start + (end - start) *
    sin^2(pi p / 2)` or `end + (start - end) * cos^2(pi p / 2)`), so float32 keeps its
    precision where the rate is tiny (1e-8 at the end of a cycle)."""
    pos = ops.clip(pos, 0.0, 1.0)
    if abs(start) <= abs(end):
        return start + (end - start) * ops.square(ops.sin(math.pi / 2.0 * pos))
    return end + (start - end) * ops.square(ops.cos(math.pi / 2.0 * pos))
