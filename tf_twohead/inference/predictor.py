"""`Predictor`: image files or uint8 arrays in, named per-head probabilities out.

It runs a `.keras` model with TensorFlow, a `.tflite` model with LiteRT or an `.onnx`
model with ONNX Runtime (`onnx_runner`), with the same results. The head definitions
(positive class ids, thresholds) come from an export's embedded metadata or the run's
`config.yaml` beside a `.keras` file,
falling back to the package defaults. For the softmax baseline each head's
probability is the sum of the probabilities of its positive classes and its decision
is "argmax is a positive class", so both kinds answer the same per-head questions.

Example:

>>> predictor = Predictor("saved_models/two_head/best.keras")
>>> predictor.predict_file("dataset/screens/img_1.jpg")
{'main': 0.97, 'aux': 0.02}
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tf_twohead.config import load_config
from tf_twohead.config.limits import UPPER
from tf_twohead.core.api import public
from tf_twohead.core.decisions import decide, default_threshold
from tf_twohead.core.defaults import DEFAULT_CLASS_NAMES, DEFAULT_HEADS, SOFTMAX_OUTPUT
from tf_twohead.core.errors import ModelFileError
from tf_twohead.core.quiet import native_stderr_silenced
from tf_twohead.core.run_folder import CONFIG, EXPORTS
from tf_twohead.data.images import load_rgb
from tf_twohead.inference import metadata

MAX_IMG_SIZE = UPPER["data.img_size"]  # a larger input than a config may ask for: not ours
MAX_BATCH = 1024
MODEL_SUFFIXES = (".keras", ".tflite", ".onnx")


def find_run_config(model_path: str | Path):
    """The `config.yaml` beside a model file (or, for a run's `exports/`, the run's),
    loaded, or None when there is none."""
    folder = Path(model_path).parent
    for candidate in (folder / CONFIG, folder.parent / CONFIG):
        if candidate.is_file() and (candidate.parent == folder or folder.name == EXPORTS):
            return load_config(candidate)  # a run's exports/ use the run's config
    return None


class KerasRunner:
    """Runs a `.keras` model through one traced `tf.function` (far less per-call
    overhead than `model.predict()` for one image)."""

    def __init__(self, path: Path):
        import tensorflow as tf

        from tf_twohead.keras_files.load import load_model  # imports Keras: only for .keras files

        self.model = load_model(path)
        self.img_size = int(self.model.inputs[0].shape[1])
        self.output_names = list(self.model.output_names)
        self.output_widths = {name: int(t.shape[-1])
                              for name, t in zip(self.output_names, self.model.outputs)}
        self.params = int(self.model.count_params())
        spec = tf.TensorSpec((None, self.img_size, self.img_size, 3), tf.uint8)
        model = self.model
        self._serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._serve(images).items()}


class TFLiteRunner:
    """Runs a `.tflite` model with LiteRT (XNNPACK on CPU) through its signature runner,
    so outputs come back by name, never by position."""

    def __init__(self, path: Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_stderr_silenced():  # LiteRT's "Created ... XNNPACK delegate" line
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            signatures = self.interpreter.get_signature_list()
        except (ValueError, RuntimeError) as e:  # not a flatbuffer LiteRT can read
            raise ModelFileError(f"{path}: not a model LiteRT can read ("
                                 f"{' '.join(str(e).split())[:200]})") from None
        if "serving_default" not in signatures:
            raise ModelFileError(f"{path} has no 'serving_default' signature (found "
                                 f"{sorted(signatures)}); convert it with `tf-twohead convert`.")
        self.runner = self.interpreter.get_signature_runner("serving_default")
        inputs = self.runner.get_input_details()
        if set(inputs) != {"image"}:
            raise ModelFileError(f"{path}: its signature takes {sorted(inputs)}, not one "
                                 "'image'; convert it with `tf-twohead convert`.")
        shape = [int(n) for n in inputs["image"]["shape"]]
        if (len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3
                or not 1 <= shape[0] <= MAX_BATCH or not 16 <= shape[1] <= MAX_IMG_SIZE):
            raise ModelFileError(f"{path}: its input is {shape}; tf-twohead's models take "
                                 f"(batch <= {MAX_BATCH}, S, S, 3) images with S in "
                                 f"16..{MAX_IMG_SIZE}. Is it a tf-twohead export?")
        # uint8 pixels; float32 pixels (0-255) for a 16x8 model, whose kernels take int16.
        self.dtype = np.dtype(inputs["image"]["dtype"])
        if self.dtype not in (np.uint8, np.float32):
            raise ModelFileError(f"{path}: its input is {self.dtype.name}, not uint8 or "
                                 "float32 pixels. Is it a tf-twohead export?")
        with native_stderr_silenced():  # the delegate says hello at the first call
            self.runner(image=np.zeros(shape, self.dtype))
        self.img_size = int(shape[1])
        self.batch = int(shape[0])  # 1 for our exports: static shapes run faster
        self.output_names = sorted(signatures["serving_default"]["outputs"])
        self.output_widths = {name: int(d["shape"][-1])
                              for name, d in self.runner.get_output_details().items()}
        self.params = None  # not stored in the flatbuffer; see the metadata

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = images.astype(self.dtype, copy=False)
        if self.batch == len(images):
            return {k: np.asarray(v) for k, v in self.runner(image=images).items()}
        parts = [self.runner(image=images[i:i + self.batch])
                 for i in range(0, len(images), self.batch)]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


@public
class Predictor:
    """Run a saved model on images and return probabilities keyed by head name.

    Works the same on `.keras` files (TensorFlow), `.tflite` files (LiteRT) and `.onnx`
    files (ONNX Runtime): the heads' meaning comes from the export's embedded metadata,
    or from the run's
    `config.yaml` beside a `.keras` file, else from the package defaults.

    Args:
        model_path: str. A `.keras`, `.tflite` or `.onnx` file.
        heads: dict or None. Head name -> positive class ids, overriding the above.
        batch_size: int. Batch size of `predict_arrays`.
        threads: int or None. LiteRT's or ONNX Runtime's threads for `.tflite` and
            `.onnx` (TensorFlow's are set process-wide with `set_threads`).
    """

    def __init__(self, model_path: str | os.PathLike, heads: dict | None = None,
                 batch_size: int = 64, threads: int | None = None):
        self.path = Path(model_path)
        if self.path.suffix not in MODEL_SUFFIXES:
            raise ValueError(f"Predictor reads {', '.join(MODEL_SUFFIXES)} files. "
                             f"Received: {model_path}")
        if not self.path.is_file():
            raise FileNotFoundError(f"Model file not found: {model_path}")
        self.config = find_run_config(self.path)
        self.metadata = metadata.read(self.path) if self.path.suffix == ".tflite" else None
        if self.path.suffix == ".tflite":
            self.runner = TFLiteRunner(self.path, threads)
        elif self.path.suffix == ".onnx":
            from tf_twohead.inference.onnx_runner import OnnxRunner  # ONNX Runtime, no TF

            self.runner = OnnxRunner(self.path, threads)
            self.metadata = self.runner.metadata
        else:
            self.runner = KerasRunner(self.path)
        self.img_size = self.runner.img_size
        self.output_names = self.runner.output_names
        self.kind = "softmax" if self.output_names == [SOFTMAX_OUTPUT] else "two_head"
        cfg, meta = self.config, self.metadata
        if meta:
            self.class_names = list(meta["class_names"])
            known = {name: h["positive_ids"] for name, h in meta["heads"].items()}
            self.thresholds = {name: h["threshold"] for name, h in meta["heads"].items()
                               if h["threshold"] is not None}
        else:
            self.class_names = list(cfg.data.class_names) if cfg else list(DEFAULT_CLASS_NAMES)
            known = dict(cfg.model.heads) if cfg else dict(DEFAULT_HEADS)
            self.thresholds = {}
        heads = dict(heads) if heads is not None else known
        if self.kind == "softmax":  # its heads read class columns: each must exist
            width = self.runner.output_widths[SOFTMAX_OUTPUT]
            bad = {h: ids for h, ids in heads.items() if any(not 0 <= i < width for i in ids)}
            if bad or len(self.class_names) != width:
                raise ModelFileError(
                    f"{self.path}: its heads {bad or dict(heads)} and {len(self.class_names)} "
                    f"class names do not fit its {width} softmax outputs. Pass heads that "
                    "name its classes, or export it again with tf-twohead convert.")
        if self.kind == "two_head":  # the model's outputs, in the configured order
            order = [n for n in heads if n in self.output_names]
            order += [n for n in self.output_names if n not in order]
            heads = {name: heads.get(name, []) for name in order}
        self.heads = {k: list(v) for k, v in heads.items()}
        self.batch_size = batch_size

    @property
    def head_names(self) -> list[str]:
        return list(self.heads)

    @property
    def model(self):
        """The Keras model (`.keras` files only)."""
        return self.runner.model

    def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The model's own outputs for a uint8 batch `(N, S, S, 3)`, keyed by output name."""
        return self.runner(images)

    def predict_arrays(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Per-head probabilities `(N,)` for a uint8 batch; adds "probs" for softmax models."""
        chunks = [self.raw(np.asarray(images[i:i + self.batch_size], dtype=np.uint8))
                  for i in range(0, len(images), self.batch_size)]
        outputs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return self.head_scores(outputs)

    def head_scores(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Map raw outputs to per-head probabilities (and keep softmax "probs")."""
        if self.kind == "two_head":
            return {name: outputs[name].reshape(-1) for name in self.heads}
        probs = outputs[SOFTMAX_OUTPUT]
        scores = {name: probs[:, ids].sum(axis=1) for name, ids in self.heads.items()}
        scores[SOFTMAX_OUTPUT] = probs
        return scores

    def threshold(self, head: str) -> float | None:
        """A head's threshold: the model's metadata's, else `core.decisions`' default
        (None, argmax, for softmax models)."""
        return self.thresholds.get(head, default_threshold(self.kind))

    def decisions(self, scores: dict[str, np.ndarray],
                  thresholds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Per-head yes/no by `core.decisions.decide`: score >= threshold, or for softmax
        (no threshold) argmax. Thresholds come from the argument, else `threshold`."""
        thresholds = thresholds or {}
        return {name: decide(scores[name], thresholds.get(name, self.threshold(name)),
                             scores.get(SOFTMAX_OUTPUT), ids)
                for name, ids in self.heads.items()}

    def predict_file(self, path: str | os.PathLike) -> dict:
        """Probabilities for one image file: decode + EXIF + RGB + resize + model."""
        image = load_rgb(path, self.img_size)[None]
        scores = self.head_scores(self.raw(image))
        result = {name: float(scores[name][0]) for name in self.heads}
        if self.kind == "softmax":
            result[SOFTMAX_OUTPUT] = [float(p) for p in scores[SOFTMAX_OUTPUT][0]]
        return result
