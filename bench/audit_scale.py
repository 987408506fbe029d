"""How the data audit scales: all of Fashion-MNIST plus edited copies, audited (no
label-error models), with the time per stage and the copies it finds.

Writes Fashion-MNIST's 70,000 images at 64 px (55,000 train, 5,000 val, 10,000 test)
and `--copies` edited copies of random ones (1-3 px crops, rotations up to 5 degrees,
JPEG 60-90, as `audit_demo.py` plants them) into random splits (80/10/10), then runs
`tt.audit`. Prints the audit's time per 10,000 images, the pHash candidate pairs and the
checked ones, and the recall of the copies (a copy counts as found when it lands in its
original's duplicate group). Fashion-MNIST's own near-identical items make groups
without a planted copy; their count is printed, not scored.

Usage: python bench/audit_scale.py [--copies 30000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from audit_demo import edited_copy  # noqa: E402
from timing import cpu_flags  # noqa: E402

import tf_twohead as tt  # noqa: E402
from tf_twohead.data.sources import write_fashion_mnist  # noqa: E402


def build(root: Path, copies: int, seed: int) -> dict[str, str]:
    """The dataset; returns each copy's path -> its original's path."""
    write_fashion_mnist(root, size=64, train=55000, val=5000, test=10000, progress=False)
    rng = np.random.default_rng(seed)
    splits = {s: pd.read_csv(root / f"{s}.csv", header=None, names=["path", "class_id"])
              for s in ("train", "val", "test")}
    pool = pd.concat(splits.values(), ignore_index=True)
    originals = {}
    added = {s: [] for s in splits}
    for k, i in enumerate(rng.integers(0, len(pool), copies)):
        path, class_id = pool.iloc[i]
        new = f"{Path(path).parent}/copy_{k:05d}.jpg"
        edited_copy(root / path, root / new, rng)
        split = rng.choice(["train", "val", "test"], p=[0.8, 0.1, 0.1])
        added[split].append({"path": new, "class_id": class_id})
        originals[new] = path
    for s, rows in added.items():
        pd.concat([splits[s], pd.DataFrame(rows)]).to_csv(root / f"{s}.csv", header=False,
                                                          index=False)
    return originals


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=30000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="build the dataset here (kept) instead of a temp folder")
    args = p.parse_args()
    print("CPU flags:", cpu_flags())
    with tempfile.TemporaryDirectory(prefix="tf_twohead_audit_scale_") as tmp:
        root = Path(args.keep or Path(tmp) / "fm")
        start = time.perf_counter()
        originals = build(root, args.copies, args.seed)
        print(f"Built {70000 + args.copies:,} images in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        result = tt.audit(root, img_size=64, overrides=[f"data.cache_dir={Path(tmp) / 'c'}"])
        seconds = time.perf_counter() - start
        images = int(result.balance["images"].sum())
        dup = result.duplicates
        group = dict(zip(dup["path"], dup["group"]))
        found = sum(1 for c, o in originals.items() if c in group and group.get(o) == group[c])
        planted = set(originals) | set(originals.values())
        unplanted = dup.groupby("group")["path"].apply(lambda s: not planted & set(s)).sum()
        print(f"\nAudit of {images:,} images (no label-error models, 2 threads): {seconds:.0f} s"
              f" = {seconds / images * 1e4 / 60:.2f} min per 10,000 images")
        print(f"Copies found in their original's group: {found:,} of {len(originals):,} "
              f"(recall {found / len(originals):.3f}); {unplanted:,} groups hold no planted "
              "copy (Fashion-MNIST's own look-alikes or duplicates)")
        head, findings = result.summary.split("## Findings, worst first")
        print(head.strip().splitlines()[-1])  # the time per stage
        print(findings.split("\n## ")[0].strip())


if __name__ == "__main__":
    main()
