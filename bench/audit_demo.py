"""The data audit on planted problems: does it find them, and does cleaning help?

Takes a Fashion-MNIST dataset in the reference layout (`tf-twohead data fashion-mnist`),
copies it, and plants:
  - label flips: `--flips` train rows get another class id;
  - leakage: `--leaks` test images copied into train, each changed a little (a 1-3 px
    crop, a rotation of up to 5 degrees, JPEG recompression at quality 60-90).
Then runs `tf-twohead data audit` (out-of-fold cleanlab models) and prints, for each
planted kind, planted / flagged / found, precision and recall, the audit's time per
10,000 images; then trains the two-head model on the planted CSVs and on the audit's
clean copies (leaks out; leaks and flagged label errors out: `--write-clean`,
`--drop-label-issues`) and prints the main head's F1 of each (mean of `--seeds`) on the
same test split, whole and without the test images that leaked into train.

Usage: python bench/audit_demo.py --data demo_data/fm6k [--flips 300] [--leaks 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

import tf_twohead as tt  # noqa: E402
from tf_twohead.core.tables import markdown_table  # noqa: E402


def edited_copy(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """A copy of an image as people make them: cropped by 1-3 px a side and resized back,
    rotated by up to 5 degrees, recompressed at JPEG quality 60-90."""
    with Image.open(src) as img:
        w, h = img.size
        c = int(rng.integers(1, 4))
        img = img.convert("RGB").crop((c, c, w - c, h - c)).resize((w, h))
        img = img.rotate(float(rng.uniform(-5, 5)), resample=Image.Resampling.BILINEAR)
        img.save(dst, quality=int(rng.integers(60, 91)))


def plant(src: Path, dst: Path, flips: int, leaks: int, seed: int) -> tuple[set, set, set]:
    """Copy the dataset and plant problems; return the (split, line) of each kind and the
    paths of the test images copied into train."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("audit", "*.npy"))
    rng = np.random.default_rng(seed)
    train = pd.read_csv(dst / "train.csv", header=None, names=["path", "class_id"])
    test = pd.read_csv(dst / "test.csv", header=None, names=["path", "class_id"])
    flipped = rng.choice(len(train), flips, replace=False)
    train.loc[flipped, "class_id"] = (train.loc[flipped, "class_id"]
                                      + rng.integers(1, 3, flips)) % 3
    rows, sources = [], set()
    for i, index in enumerate(rng.choice(len(test), leaks, replace=False)):
        path, class_id = test.iloc[index]
        sources.add(path)
        new = Path(path).parent / f"leak_{i:04d}.jpg"
        edited_copy(dst / path, dst / new, rng)
        rows.append({"path": str(new), "class_id": class_id})
    train = pd.concat([train, pd.DataFrame(rows)], ignore_index=True)
    train.to_csv(dst / "train.csv", header=False, index=False)
    planted_flips = {("train", int(i) + 1) for i in flipped}
    planted_leaks = {("train", len(train) - leaks + k + 1) for k in range(leaks)}
    return planted_flips, planted_leaks, sources


def scores(planted: set, flagged: set) -> dict:
    found = len(planted & flagged)
    return {"planted": len(planted), "flagged": len(flagged), "found": found,
            "precision": found / len(flagged) if flagged else float("nan"),
            "recall": found / len(planted) if planted else float("nan")}


def main_f1(root: Path, test_roots: dict, out: Path, name: str, size: int, epochs: int,
            seed: int) -> dict:
    """Train on `root`'s train/val; the main head's F1 on each of `test_roots`' test split."""
    cfg = tt.load_config("two_head", [f"data.root={root}", f"data.img_size={size}",
                                      f"output_dir={out}", f"exp={name}_{seed}",
                                      f"train.epochs={epochs}", f"train.seed={seed}"])
    tt.train(cfg, verbose=0)
    return {test: float(tt.evaluate(cfg.run_dir, data_root=test_root, latency_images=1,
                                    progress=False)["heads"]["main"]["f1"])
            for test, test_root in test_roots.items()}


def without_sources(root: Path, dst: Path, sources: set) -> Path:
    """A folder whose test split is `root`'s without the images copied into train (the
    test images the leakage inflates), images hard-linked."""
    test = pd.read_csv(root / "test.csv", header=None, names=["path", "class_id"])
    test = test[~test["path"].isin(sources)]
    for path in test["path"]:
        (dst / path).parent.mkdir(parents=True, exist_ok=True)
        os.link(root / path, dst / path)
    test.to_csv(dst / "test.csv", header=False, index=False)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a Fashion-MNIST dataset folder")
    p.add_argument("--flips", type=int, default=300)
    p.add_argument("--leaks", type=int, default=200)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--audit-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6, help="epochs of the before/after runs")
    p.add_argument("--seeds", type=int, default=2,
                   help="seeds of each before/after run (0: the audit alone)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf_twohead_audit_demo_") as tmp:
        tmp = Path(tmp)
        planted_root = tmp / "planted"
        flips, leaks, sources = plant(Path(args.data), planted_root, args.flips, args.leaks,
                                      args.seed)
        start = time.perf_counter()
        result = tt.audit(planted_root, folds=args.folds, epochs=args.audit_epochs,
                          img_size=args.size, write_clean=tmp / "clean",
                          drop_label_issues=True,
                          overrides=[f"data.cache_dir={tmp / 'cache'}"])
        seconds = time.perf_counter() - start
        images = int(result.balance["images"].sum())
        dup = result.duplicates
        leaked = dup[dup["leaked"].astype(bool) & (dup["split"] == "train")]
        leaked_train = {("train", int(line)) for line in leaked["line"]}
        issues = result.label_issues
        flagged = {(s, int(ln)) for s, ln in zip(issues["split"], issues["line"])
                   if s == "train"}
        ranked = [(s, int(ln)) for s, ln in zip(issues["split"], issues["line"])
                  if s == "train"][:len(flips)]  # label_issues.csv is worst first
        table = pd.DataFrame({
            "leakage (train copies of test images)": scores(leaks, leaked_train),
            "label flips (train), all flagged": scores(flips, flagged),
            f"label flips (train), the {len(flips)} worst scores": scores(flips, set(ranked)),
        }).T
        print("\n" + markdown_table(table.rename_axis("planted problem").reset_index()))
        print(f"\nAudit of {images:,} images ({args.folds} folds x {args.audit_epochs} epochs "
              f"at {args.size} px, 2 threads): {seconds:.0f} s = "
              f"{seconds / images * 1e4 / 60:.1f} min per 10,000 images")
        print(f"All label issues flagged: {len(issues)} (val/test included); "
              f"clean copy: {json.dumps(result.clean)}")
        print("\nThe fold models that judged the labels (out of sample):\n")
        print(markdown_table(result.model_quality))
        if not args.seeds:
            return
        tests = {"test split": planted_root,
                 "test without the leaked images": without_sources(
                     planted_root, tmp / "unleaked", sources)}
        leaks_only = tmp / "clean_leaks"
        tt.audit(planted_root, out=tmp / "audit2", img_size=args.size, write_clean=leaks_only,
                 progress=False, overrides=[f"data.cache_dir={tmp / 'cache'}"])
        f1 = {}
        for name, root in (("planted CSVs", planted_root), ("clean: leaks out", leaks_only),
                           ("clean: leaks and flagged labels out", tmp / "clean")):
            runs = [main_f1(root, tests, tmp / "runs", name.split(":")[-1].strip()
                            .replace(" ", "_"), args.size, args.epochs, seed)
                    for seed in range(args.seeds)]
            f1[f"trained on the {name}"] = {t: np.mean([r[t] for r in runs]) for t in tests}
        print(f"\nMain-head F1, mean of {args.seeds} seeds ({args.epochs} epochs), on the "
              "same test images:\n")
        print(markdown_table(pd.DataFrame(f1).T.rename_axis("model").reset_index()))


if __name__ == "__main__":
    main()
