"""Peak memory of decoding hostile and huge images (the pixel budget, `data.max_image_pixels`).

Builds a small corpus in a temporary folder, then decodes each file to 256 px in a fresh
process and prints that process's peak resident memory above its baseline:

- `bomb16`: a 12000x12000 16-bit grayscale PNG of a few hundred KB (144 MP: refused
  before decoding);
- `big16`: a 6000x6000 16-bit PNG (36 MP, under the budget: decoded, scaled to 8 bits in
  row blocks);
- `big16_float64`: the same file through the float64 conversion the decoder used before;
- `jpeg40`: an 8000x5000 JPEG (40 MP, decoded at 1/8 scale by libjpeg's draft mode);
- `cache2x`: a split of two `bomb16` rows and two `big16` rows, cached with 2 decoding
  threads (the budget bounds the peak by workers x budget).

Usage: python bench/decode_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys
import numpy as np
from PIL import Image
Image.MAX_IMAGE_PIXELS = None  # measure our budget, not Pillow's own bomb check
from tf_twohead.data.images import load_rgb
def peak():  # VmHWM: this process's peak (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
case, path = sys.argv[1], sys.argv[2]
base = peak()
outcome = "decoded"
try:
    if case == "big16_float64":
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            Image.fromarray(arr.round().astype(np.uint8), "L").convert("RGB").resize((256, 256))
    elif case == "cache2x":
        from tf_twohead.data.cache import load_split
        load_split(path, "train", 256, 3, "skip", path + "/cache", workers=2, progress=False)
    else:
        load_rgb(path, 256)
except OSError as e:
    outcome = f"refused: {e}"
print(json.dumps({"case": case, "extra_mb": peak() - base, "outcome": outcome}))
"""


def corpus(root: Path) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    files = {"bomb16": root / "bomb16.png", "big16": root / "big16.png",
             "jpeg40": root / "jpeg40.jpg"}
    Image.fromarray(np.zeros((12000, 12000), np.uint16)).save(files["bomb16"])
    ramp = (np.arange(6000, dtype=np.uint16)[None, :] * 10).repeat(6000, axis=0)
    Image.fromarray(ramp).save(files["big16"])
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (500, 800, 3), np.uint8)
    Image.fromarray(small).resize((8000, 5000)).save(files["jpeg40"], quality=85)
    split = root / "split"
    (split / "x").mkdir(parents=True)
    lines = []
    for i, name in enumerate(["bomb16", "bomb16", "big16", "big16"]):
        target = split / "x" / f"{i}.png"
        target.write_bytes(files[name].read_bytes())
        lines.append(f"x/{i}.png,0")
    (split / "train.csv").write_text("\n".join(lines) + "\n")
    files["cache2x"] = split
    return files


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = corpus(Path(tmp))
        sizes = {k: v.stat().st_size for k, v in files.items() if v.is_file()}
        cases = ["bomb16", "big16", "big16_float64", "jpeg40", "cache2x"]
        print("| case | file | peak above baseline | outcome |\n|---|---|---|---|")
        for case in cases:
            path = files["big16" if case == "big16_float64" else case]
            done = subprocess.run([sys.executable, "-c", CHILD, case, str(path)],
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            size = sizes.get("big16" if case == "big16_float64" else case)
            shown = f"{size / 1e3:,.0f} KB" if size else "4 rows"
            print(f"| {case} | {shown} | {r['extra_mb']:,.0f} MB | {r['outcome'][:60]} |")


if __name__ == "__main__":
    main()
