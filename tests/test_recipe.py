"""The PyTorch-faithful recipe: initialisation, fused BatchNorm, PyTorch's Adam."""

import json
import math

import keras
import numpy as np
import pytest
from torch_helpers import run_torch

from tf_twohead import models
from tf_twohead.models.batchnorm import FusedBatchNormalization
from tf_twohead.recipe.optimizers import TorchAdam


def _kernels(model):
    """{layer name: (kernel, fan_in as PyTorch counts it)} of every conv and dense layer."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            k = layer.kernel.numpy()
            out[layer.name] = (k, k.shape[0] * k.shape[1])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k = layer.kernel.numpy()
            out[layer.name] = (k, int(np.prod(k.shape[:-1])))
    return out


def test_torch_init_matches_pytorch_bounds():
    keras.utils.set_random_seed(0)
    model = models.build("two_head", 64, init="torch")
    kernels = _kernels(model)
    assert {"stage2_0_branch2_3", "stage3_0_branch1_0", "conv1_0", "main_conv", "main"} <= set(
        kernels)
    for name, (kernel, fan_in) in kernels.items():
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound + 1e-7, name
        if kernel.size >= 200:  # U(-b, b): the extremes are reached and std is b/sqrt(3)
            assert np.abs(kernel).max() > 0.9 * bound, name
            assert np.std(kernel) == pytest.approx(bound / math.sqrt(3), rel=0.15), name
    bias = model.get_layer("main").bias.numpy()
    assert bias != 0 and abs(bias[0]) <= 1 / math.sqrt(1024)
    # Layers get different draws (an initializer object is never shared).
    assert not np.allclose(kernels["main_conv"][0], kernels["aux_conv"][0])


def test_keras_init_keeps_glorot_and_zero_bias():
    keras.utils.set_random_seed(0)
    model = models.build("two_head", 64, init="keras")
    depthwise, _ = _kernels(model)["stage2_1_branch2_3"]
    channels = depthwise.shape[2]
    glorot = math.sqrt(6 / (9 * channels + 9))
    assert np.abs(depthwise).max() <= glorot + 1e-7
    assert model.get_layer("main").bias.numpy().tolist() == [0.0]


def test_same_seed_same_weights():
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        weights.append(models.build("two_head", 32, head_width=8).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_init_bounds_match_torchvision_itself():
    """Per layer, our largest |w| reaches torchvision's bound, and never exceeds it."""
    code = (
        "import json, torch, torchvision; torch.manual_seed(0);"
        "m = torchvision.models.shufflenet_v2_x0_5();"
        "print(json.dumps({k.replace('.', '_').removesuffix('_weight'): float(v.abs().max())"
        " for k, v in m.state_dict().items() if k.endswith('weight') and v.dim() in (2, 4)}))"
    )
    done = run_torch(code)
    torch_max = json.loads(done.strip().splitlines()[-1])
    keras.utils.set_random_seed(0)
    ours = _kernels(models.shufflenet_v2(0.5, (64, 64, 3)))
    assert set(torch_max) == set(ours)
    for name, (kernel, _) in ours.items():
        assert np.abs(kernel).max() == pytest.approx(torch_max[name], rel=0.1), name


def test_fused_batchnorm_matches_keras_and_pytorch_statistics():
    x = np.random.default_rng(0).normal(3, 2, (4, 5, 5, 6)).astype("float32")
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    y_fused, y_plain = fused(x, training=True), plain(x, training=True)
    np.testing.assert_allclose(y_fused, y_plain, atol=1e-4)
    n = x.size // x.shape[-1]
    unbiased = x.reshape(-1, 6).var(0) * n / (n - 1)  # PyTorch's running_var update
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.1 * x.reshape(-1, 6).mean(0),
                               rtol=1e-4)
    # Inference is Keras' own code path, with the same weights.
    plain.set_weights(fused.get_weights())
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def _pytorch_adam(w, grads, lr, wd, b1=0.9, b2=0.999, eps=1e-8, decoupled=False):
    """torch.optim.Adam (or AdamW with decoupled=True), step by step in float64."""
    w = w.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        if decoupled:
            w = w - lr * wd * w
        else:
            g = g + wd * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return w


@pytest.mark.parametrize("mode", ["l2", "decoupled"])
def test_torch_adam_updates_like_pytorch(mode):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype("float32")
    # Gradients from 1e-4 to 1: the small ones are where epsilon and L2 matter.
    grads = [(rng.normal(size=(5, 3)) * 10 ** rng.uniform(-4, 0, (5, 3))).astype("float32")
             for _ in range(8)]
    variable = keras.Variable(w0.copy())
    optimizer = TorchAdam(1e-2, weight_decay=1e-2, weight_decay_mode=mode)
    step = tf.function(lambda g: optimizer.apply([g], [variable]))
    for g in grads:
        step(tf.constant(g))
    expected = _pytorch_adam(w0, grads, 1e-2, 1e-2, decoupled=mode == "decoupled")
    np.testing.assert_allclose(variable.numpy(), expected, atol=2e-6)


def test_torch_adam_round_trips_its_config():
    optimizer = TorchAdam(3e-4, epsilon=1e-7, weight_decay=5e-4, weight_decay_mode="l2")
    again = TorchAdam.from_config(optimizer.get_config())
    assert (again.l2, again.weight_decay_mode, again.epsilon) == (5e-4, "l2", 1e-7)
    with pytest.raises(ValueError, match="Received: weight_decay_mode='adamw'"):
        TorchAdam(weight_decay_mode="adamw")
