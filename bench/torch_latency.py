"""Per-image latency of the PyTorch reference, file -> probabilities, 1 thread: eager
PyTorch and ONNX Runtime running the same network exported from PyTorch.

Runs under the torchref venv (`../shared/bench/torchref.sh`: PyPI's torch 2.13 CPU,
torchvision, onnx, onnxruntime), driven by bench/anchors.py; prints one JSON line.
The preprocessing is what a PyTorch user writes with Pillow and NumPy, and the same
work as tf-twohead's `load_rgb`: open, JPEG draft (libjpeg's reduced-scale decode when
the target is that much smaller), EXIF orientation, RGB, bilinear resize, ImageNet
normalisation, NCHW; then the model and a sigmoid per head.

Usage: python bench/torch_latency.py --images DIR --size 256 [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from torch_reference import MEAN, STD, TwoHead  # noqa: E402

_MEAN = np.array(MEAN, np.float32) * 255
_SCALE = 1 / (np.array(STD, np.float32) * 255)


def preprocess(path: Path, size: int) -> np.ndarray:
    """A JPEG file -> a normalised (1, 3, S, S) float32 array."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))
        img = ImageOps.exif_transpose(img).convert("RGB").resize(
            (size, size), Image.Resampling.BILINEAR)
        x = (np.asarray(img, np.float32) - _MEAN) * _SCALE
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def median_per_image(fn, files, repeats: int) -> float:
    for path in files[:3]:
        fn(path)
    times = []
    for _ in range(repeats):
        for path in files:
            start = time.perf_counter()
            fn(path)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    files = sorted(Path(args.images).glob("*/*.jpg"))[: args.count]
    torch.manual_seed(0)
    model = TwoHead().eval()
    size = args.size

    @torch.no_grad()
    def eager(path):
        return torch.sigmoid(model(torch.from_numpy(preprocess(path, size)))).numpy()

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "two_head.onnx"
        example = torch.zeros(1, 3, size, size)
        try:
            torch.onnx.export(model, (example,), str(onnx_path), input_names=["image"],
                              output_names=["logits"], dynamo=False)
        except TypeError:  # an older torch without the dynamo switch
            torch.onnx.export(model, (example,), str(onnx_path), input_names=["image"],
                              output_names=["logits"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=["CPUExecutionProvider"])

    def onnx(path):
        logits = session.run(None, {"image": preprocess(path, size)})[0]
        return 1 / (1 + np.exp(-logits))

    check = preprocess(files[0], size)
    with torch.no_grad():
        gap = float(np.abs(session.run(None, {"image": check})[0]
                           - model(torch.from_numpy(check)).numpy()).max())
    x = preprocess(files[0], size)
    tensor = torch.from_numpy(x)
    with torch.no_grad():
        model_eager = median_per_image(lambda _: model(tensor), files, args.repeats)
    model_ort = median_per_image(lambda _: session.run(None, {"image": x}), files, args.repeats)
    result = {
        "torch": torch.__version__, "onnxruntime": ort.__version__,
        "eager_ms": median_per_image(eager, files, args.repeats),
        "ort_ms": median_per_image(onnx, files, args.repeats),
        "preprocess_ms": median_per_image(lambda f: preprocess(f, size), files, args.repeats),
        "eager_model_ms": model_eager, "ort_model_ms": model_ort,
        "ort_vs_eager_max_logit_gap": gap,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
