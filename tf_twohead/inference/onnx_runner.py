"""Runs an `.onnx` export with ONNX Runtime, outputs by name; no TensorFlow imported.

An `.onnx` file is a protobuf that names its tensors' files when their data lives
outside it ("external data", resolved beside the model or from the working folder): a
stranger's file could make ONNX Runtime read any file it names. This runner reads the
file once, bounded, refuses external data, and gives ONNX Runtime the checked bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf_twohead.config.limits import UPPER
from tf_twohead.core.errors import ModelFileError
from tf_twohead.inference import metadata

MAX_ONNX_BYTES = 256 << 20  # ShuffleNetV2 x2.0 with wide heads is ~30 MB
MAX_IMG_SIZE = UPPER["data.img_size"]
INSTALL = "pip install 'tf-twohead[onnx]'"


def _modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ModelFileError(f".onnx models need ONNX Runtime and onnx ({e.name} is not "
                             f"installed): {INSTALL}") from None
    return onnx, onnxruntime


def _tensors(graph):
    """Every tensor a graph holds, its subgraphs' included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(
                    attribute.graphs):
                yield from _tensors(sub)


def checked_model_bytes(path: Path):
    """The parsed model and its bytes: bounded in size, with no external data."""
    onnx, _ = _modules()
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelFileError(f"{path}: {size:,} bytes, over the {MAX_ONNX_BYTES >> 20} MiB an "
                             "ONNX export of tf-twohead's models can need.")
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # DecodeError and friends: not a protobuf ONNX reads
        raise ModelFileError(f"{path}: not an ONNX model ({type(e).__name__}).") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise ModelFileError(f"{path}: its tensors point to external data files; tf-twohead's "
                             "exports hold every weight inside the file. Export it again "
                             "with tf-twohead convert --format onnx.")
    return model, data


def embedded_metadata(model, path: Path) -> dict | None:
    """The tf-twohead metadata in a parsed model's `metadata_props`, checked, or None."""
    props = {p.key: p.value for p in model.metadata_props}
    text = props.get(metadata.METADATA_NAME)
    return None if text is None else metadata.parse(text, path)


def read_metadata(path: Path) -> dict | None:
    """An `.onnx` file's embedded metadata, checked as `OnnxRunner` checks the file, without
    starting ONNX Runtime."""
    return embedded_metadata(checked_model_bytes(Path(path))[0], path)


class OnnxRunner:
    """`.onnx` -> outputs by name, on ONNX Runtime's CPU provider; the embedded metadata
    (`metadata_props`) is `self.metadata`."""

    def __init__(self, path: Path, threads: int | None = None):
        _, ort = _modules()
        model, data = checked_model_bytes(path)
        self.metadata = embedded_metadata(model, path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.intra_op_num_threads = int(threads or 0)  # 0: ONNX Runtime's default
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(data, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # Fail, InvalidGraph, ...: one line, the runtime's words
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it "
                                 f"({' '.join(str(e).split())[:200]})") from None
        inputs = self.session.get_inputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        batch = shape[0] if shape else None
        if (len(inputs) != 1 or inputs[0].name != "image" or inputs[0].type != "tensor(uint8)"
                or len(shape) != 4 or not all(isinstance(n, int) for n in shape[1:])
                or shape[1] != shape[2] or shape[3] != 3
                or not 16 <= shape[1] <= MAX_IMG_SIZE
                or not (batch is None or isinstance(batch, str) or batch == 1)):
            found = [(i.name, i.type, i.shape) for i in inputs]
            raise ModelFileError(f"{path}: its inputs are {found}; tf-twohead's take one "
                                 f"uint8 'image' (1, S, S, 3) with S in 16..{MAX_IMG_SIZE}. "
                                 "Is it a tf-twohead export?")
        self.img_size = int(shape[1])
        self.batch = 1 if batch == 1 else None  # None: any batch
        outputs = self.session.get_outputs()
        self.output_names = sorted(o.name for o in outputs)
        self.output_widths = {o.name: int(o.shape[-1]) if isinstance(o.shape[-1], int) else 1
                              for o in outputs}
        self.params = None  # see the metadata

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images, np.uint8)
        names = [o.name for o in self.session.get_outputs()]
        if self.batch is None or len(images) == 1:
            return dict(zip(names, self.session.run(names, {"image": images})))
        parts = [self.session.run(names, {"image": images[i:i + 1]})
                 for i in range(len(images))]
        return {name: np.concatenate([p[k] for p in parts]) for k, name in enumerate(names)}
