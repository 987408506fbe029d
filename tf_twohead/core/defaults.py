"""The names, choices and defaults every layer shares: the reference task, the head
names, the model kinds and the other vocabularies a config may use.

This module imports nothing, so the config schema, the model builders (which never
see a `Config`), the data pipeline and the exported metadata all read the same
answers from one place.
"""

# The reference task: class ids, their names, and which class ids each head calls positive.
DEFAULT_CLASS_NAMES = ("document", "not a document", "screen")
DEFAULT_HEADS = {"main": [2], "aux": [1]}
DEFAULT_LOSS_WEIGHTS = {"main": 2.0, "aux": 1.0}
DEFAULT_MONITOR_HEAD = "main"

MODEL_KINDS = ("two_head", "softmax", "combined")
# Kinds whose single output is "probs", a softmax over the (fine) classes.
SOFTMAX_KINDS = ("softmax", "combined")
SOFTMAX_OUTPUT = "probs"
# The combined model's training stages, in order (training/staged.py).
STAGES = ("coarse", "fine", "frozen", "unfrozen")
SCHEDULES = ("step", "one_cycle")
# How frozen encoders treat their BatchNorm: fastai's train_bn (batch statistics, moving
# statistics and gamma/beta keep training) or Keras' convention (inference mode, fixed).
FROZEN_BN = ("train", "inference")
WIDTHS = (0.5, 1.0, 1.5, 2.0)  # the keys of models.shufflenet.STAGE_OUT_CHANNELS
# ShuffleNetV2's units in stage2, stage3, stage4: torchvision's (`model.stage_repeats`).
STAGE_REPEATS = (4, 8, 4)
MAX_STAGE_REPEATS = 16
# Feature extractors (models.backbones) and MobileNetV3's alphas with ImageNet weights.
BACKBONES = ("shufflenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
MOBILENET_ALPHAS = (0.75, 1.0)
# What torchvision's ImageNet models (ShuffleNetV2) normalise [0, 1] pixels with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BAD_IMAGE_POLICIES = ("error", "skip")
# `data.max_image_pixels`'s default: a 40 MP phone photo decodes; a decompression bomb does not.
MAX_IMAGE_PIXELS = 40_000_000
# A head's answer that a per-head CSV leaves empty: no loss, no metric, no score counts it.
UNKNOWN = -1.0
# `data.max_rows`'s default: rows of one split (ImageNet's train split has 1.28 M).
MAX_SPLIT_ROWS = 2_000_000
INITS = ("torch", "keras")  # weight initialisation: PyTorch's defaults (the reference) or Keras'
WEIGHT_DECAY_MODES = ("l2", "decoupled")  # PyTorch Adam's L2-in-the-gradient, or AdamW-style
INTERPOLATIONS = ("nearest", "bilinear")
# tf.distribute for one run: auto = mirrored when the machine has several GPUs.
STRATEGIES = ("auto", "none", "mirrored")
BACKENDS = ("tensorflow", "jax")  # train.backend: the Keras 3 engine a run trains on
DISTRIBUTIONS = ("none", "data_parallel")  # train.distribution: over processes (jax)
ORACLES = ("random", "bayesian", "hyperband", "grid")
# What a search records per trial that `tune.constraints` can bound (all: at most).
CONSTRAINTS = ("tflite_kb", "latency_ms", "params", "train_seconds")
# `convert --quantize` modes: float32, float16 weights, dynamic-range int8 weights, full
# integer with per-channel (the converter's default) or per-tensor weight scales, or with
# the layers int8 hurts kept in float (mixed), and int16 activations with int8 weights
# (16x8). The last four calibrate on training images.
QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int8_per_tensor", "int8_mixed",
                 "int16x8")
CALIBRATED = ("int8", "int8_per_tensor", "int8_mixed", "int16x8")
INT8_INPUT = ("int8", "int8_per_tensor", "int8_mixed")  # raw uint8 pixels in, float out
# What `benchmark` measures: the `.keras` itself, ONNX, and every TFLite quantization.
BENCHMARK_FORMATS = ("keras", "onnx", *QUANTIZATIONS)
HEAD_METRICS = ("loss", "precision", "recall", "f1", "auc")
CLASS_METRICS = ("accuracy", "top5")  # logged by softmax-kind models (top5: over 5 classes)
TOP_K = 5


def class_metric_names(num_classes: int) -> list[str]:
    """The class-level metrics of a softmax over `num_classes`.

    The one top-5 rule: top-5 accuracy only with more than 5 classes (with 5 or fewer
    the top 5 always hold the answer). Training, evaluation and the config's list of
    metrics a search may optimise all ask here.
    """
    return [m for m in CLASS_METRICS if m != "top5" or num_classes > TOP_K]
