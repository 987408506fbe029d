"""BatchNormalization whose training step is TensorFlow's fused kernel.

Keras 3 computes BatchNorm on TensorFlow from `tf.nn.moments` and
`tf.nn.batch_normalization`: about ten elementwise ops forward and more backward, each
a pass over the activation. In ShuffleNetV2, where every conv is followed by a BN, that
was ~40% of a training step on CPU (bench/bench_core.py). `FusedBatchNormV3` does the
same in one pass each way, and it updates the moving variance with the unbiased batch
variance, as PyTorch's `BatchNorm2d` does (Keras 3's own layer uses the biased one).

Inference (`training=False`, frozen layers, export to TFLite) runs Keras' own code, so
converted models and their parity are unchanged. The variables, their names and the
layer config are those of `keras.layers.BatchNormalization`.
"""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="tf_twohead")
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused training step on TensorFlow.

    Same arguments and weights as the built-in layer. The fused path applies to 4D
    channels-last float32 inputs without a mask, in training mode, on the TensorFlow
    backend; everything else falls back to the built-in computation.

    Example:

    >>> bn = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> y = bn(np.ones((2, 8, 8, 4), "float32"), training=True)
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._can_fuse(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma if self.scale else tf.ones_like(self.moving_mean),
            self.beta if self.center else tf.zeros_like(self.moving_mean),
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=True,
            # With a factor below 1 the kernel returns the updated moving statistics:
            # (1 - f) * moving + f * batch, where f = 1 - momentum (Keras' convention).
            exponential_avg_factor=1.0 - self.momentum,
        )
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return y

    def _can_fuse(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype == "float32" and not self.renorm and not self.synchronized)
