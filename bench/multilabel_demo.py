"""Several independent questions, half their answers unknown: why masked training.

Fashion-MNIST with three yes/no questions that are not exclusive (an image can be yes to
two): `upper` (T-shirt/top, pullover, coat, shirt), `footwear` (sandal, sneaker, ankle
boot) and `dark` (the image's mean pixel under the training images' median). In train
and val, 50% of each head's answers are hidden at random, independently; the test split
answers every question. On the same test images, per seed:

  (a) masked:        one model, the per-head CSV with empty cells (tf-twohead's way);
  (b) unknown = no:  one model, every empty cell filled with 0;
  (c) complete rows: one model on the rows that answer all three (about 1/8 of them);
  (d) one per head:  three single-head models, each on its own answered rows.

Then the add-a-head flow: two heads (upper, footwear) trained on the first half of the
training images, fully answered; then `model.init_from` that run with a third head
(dark) answered only on the second half, the old heads' answers kept on the first half;
the old heads' test F1 before and after.

Every model is scored at its last epoch (no checkpoint picked by one head's F1), on the
test split, at a 0.5 threshold; latency is `evaluate`'s file -> probabilities, one image
at a time, on the same threads for every model.

Usage: python bench/multilabel_demo.py [--train 6000 --val 1000 --test 2000 --size 32
       --epochs 8 --seeds 0 1 --out bench_out/multilabel]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

import tf_twohead as tt  # noqa: E402
from tf_twohead.core.tables import markdown_table  # noqa: E402
from tf_twohead.data.sources import load_fashion_mnist  # noqa: E402

HEADS = ("upper", "footwear", "dark")
UPPER, FOOTWEAR = (0, 2, 4, 6), (5, 7, 9)
VARIANTS = {"a": "masked", "b": "unknown = no", "c": "complete rows", "d": "one per head"}


def write_images(out: Path, args) -> dict[str, pd.DataFrame]:
    """The images (once) and every row's true answers, per split."""
    data = load_fashion_mnist()
    rng = np.random.default_rng(1234)
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    order = rng.permutation(len(xtr))
    picks = {"train": (xtr, ytr, order[:args.train]),
             "val": (xtr, ytr, order[args.train:args.train + args.val]),
             "test": (xte, yte, rng.permutation(len(xte))[:args.test])}
    dark_below = float(np.median(xtr[order[:args.train]].mean(axis=(1, 2))))
    tables = {}
    for split, (images, labels, index) in picks.items():
        rows = []
        for i in index:
            rel = f"images/{split}_{i:05d}.jpg"
            path = out / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i], "L").resize(
                    (args.size, args.size), Image.Resampling.BILINEAR).save(path, quality=95)
            rows.append({"path": rel, "upper": int(labels[i] in UPPER),
                         "footwear": int(labels[i] in FOOTWEAR),
                         "dark": int(images[i].mean() < dark_below)})
        tables[split] = pd.DataFrame(rows)
    return tables


def hide(table: pd.DataFrame, seed: int, fraction: float = 0.5) -> pd.DataFrame:
    """Each head's answers hidden (NaN) at random, independently of the other heads."""
    rng = np.random.default_rng(seed)
    out = table.copy().astype({h: "float64" for h in HEADS})
    for h in HEADS:
        out.loc[rng.random(len(out)) < fraction, h] = np.nan
    return out


def write_dataset(folder: Path, images_root: Path, splits: dict[str, pd.DataFrame],
                  heads=HEADS) -> Path:
    """A dataset folder: per-head CSVs (empty cells for unknown) and hard links to the
    images (a row must name a file inside its CSV's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, table in splits.items():
        for rel in table["path"]:
            target = folder / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(images_root / rel, target)
                except OSError:
                    shutil.copyfile(images_root / rel, target)
        cells = table[["path", *heads]].copy()
        for h in heads:
            cells[h] = cells[h].map(lambda v: "" if pd.isna(v) else str(int(v)))
        cells.to_csv(folder / f"{split}.csv", index=False)
    return folder


def config(root: Path, out: Path, exp: str, heads, seed: int, args, *extra):
    return tt.load_config("two_head", [
        f"data.root={root}", f"data.img_size={args.size}", f"output_dir={out}", f"exp={exp}",
        f"model.heads={{{', '.join(f'{h}: []' for h in heads)}}}",
        f"train.monitor_head={heads[0]}", "train.loss_weights={}", f"train.seed={seed}",
        f"train.epochs={args.epochs}", f"data.cache_dir={out / 'cache'}", *extra])


def train_and_score(cfg) -> dict:
    """Train, then score the last epoch's model on the test split."""
    tt.train(cfg, verbose=0)
    result = tt.evaluate(cfg.run_dir / "last.keras", split="test", latency_images=50,
                         progress=False)
    return {"f1": {h: m["f1"] for h, m in result["heads"].items()},
            "params": int(result["params"]), "latency_ms": float(result["latency_ms"]),
            "rows": int(len(pd.read_csv(Path(cfg.data.root) / "train.csv")))}


def one_seed(seed: int, truth: dict, work: Path, args) -> dict:
    hidden = {s: hide(truth[s], seed * 10 + i) if s != "test" else truth[s]
              for i, s in enumerate(("train", "val", "test"))}
    runs, out = {}, work / f"seed{seed}"
    images = work / "all"
    masked = write_dataset(out / "a", images, hidden)
    runs["a"] = train_and_score(config(masked, out / "runs", "a", HEADS, seed, args))
    filled = {s: t.fillna(0) for s, t in hidden.items()}
    runs["b"] = train_and_score(config(write_dataset(out / "b", images, filled),
                                       out / "runs", "b", HEADS, seed, args))
    complete = {s: t.dropna() for s, t in hidden.items()}
    runs["c"] = train_and_score(config(write_dataset(out / "c", images, complete),
                                       out / "runs", "c", HEADS, seed, args))
    per_head = {}
    for h in HEADS:
        own = {s: t[["path", h]].dropna() for s, t in hidden.items()}
        folder = write_dataset(out / f"d_{h}", images, own, heads=(h,))
        per_head[h] = train_and_score(config(folder, out / "runs", f"d_{h}", (h,), seed, args))
    runs["d"] = {"f1": {h: per_head[h]["f1"][h] for h in HEADS},
                 "params": sum(r["params"] for r in per_head.values()),
                 "latency_ms": sum(r["latency_ms"] for r in per_head.values()),
                 "rows": sum(r["rows"] for r in per_head.values())}
    return runs


def add_a_head(seed: int, truth: dict, work: Path, args) -> dict:
    """Two heads on the first half of train, then a third from the second half."""
    out, images = work / f"grow{seed}", work / "all"
    half = len(truth["train"]) // 2
    old = {s: t.iloc[:half] if s == "train" else t for s, t in truth.items()}
    first = write_dataset(out / "two", images, old, heads=HEADS[:2])
    cfg = config(first, out / "runs", "two", HEADS[:2], seed, args)
    before = train_and_score(cfg)
    train = truth["train"].astype({h: "float64" for h in HEADS})
    train.loc[:half - 1, "dark"] = np.nan  # old images: old answers, the new one unknown
    train.loc[half:, list(HEADS[:2])] = np.nan  # new images: the new answer only
    val = truth["val"].astype({h: "float64" for h in HEADS})
    val.loc[: len(val) // 2 - 1, "dark"] = np.nan
    val.loc[len(val) // 2:, list(HEADS[:2])] = np.nan
    grown = write_dataset(out / "three", images, {"train": train, "val": val,
                                                  "test": truth["test"]})
    after = train_and_score(config(grown, out / "runs", "three", HEADS, seed, args,
                                   f"model.init_from={cfg.run_dir / 'last.keras'}"))
    return {"before": before["f1"], "after": after["f1"]}


def figure(table: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.2
    for i, (variant, name) in enumerate(VARIANTS.items()):
        means = [table.loc[variant, f"{h} F1"] for h in HEADS]
        bars = ax.bar(np.arange(len(HEADS)) + (i - 1.5) * width, means, width,
                      label=f"({variant}) {name}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(HEADS)), HEADS)
    ax.set_ylabel("test F1 (mean of seeds)")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    ax.set_title("Three questions, half their answers unknown in train and val")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="bench_out/multilabel")
    parser.add_argument("--figure", default=None, help="also write the bar chart here")
    parser.add_argument("--replot", action="store_true",
                        help="only draw --figure again from OUT/results.json")
    args = parser.parse_args()
    work = Path(args.out)
    if args.replot:
        saved = pd.DataFrame(json.loads((work / "results.json").read_text())["variants"])
        figure(saved.set_index(pd.Index(list(VARIANTS))), Path(args.figure))
        return
    if work.exists():
        shutil.rmtree(work)  # bench output only: the folder this script makes
    start = time.perf_counter()
    truth = write_images(work / "all", args)
    print(f"{args.train} / {args.val} / {args.test} images at {args.size} px; yes rates: "
          + ", ".join(f"{h} {truth['train'][h].mean():.2f}" for h in HEADS), flush=True)
    results = {seed: one_seed(seed, truth, work, args) for seed in args.seeds}
    grown = {seed: add_a_head(seed, truth, work, args) for seed in args.seeds}
    records = []
    for variant, name in VARIANTS.items():
        runs = [results[s][variant] for s in args.seeds]
        record = {"variant": f"({variant}) {name}"}
        for h in HEADS:
            values = [r["f1"][h] for r in runs]
            record[f"{h} F1"] = round(float(np.mean(values)), 4)
            record[f"{h} by seed"] = " / ".join(f"{v:.3f}" for v in values)
        record["mean F1"] = round(float(np.mean([record[f"{h} F1"] for h in HEADS])), 4)
        record["params"] = runs[0]["params"]
        record["latency ms"] = round(float(np.median([r["latency_ms"] for r in runs])), 2)
        record["train rows"] = runs[0]["rows"]
        records.append(record)
    table = pd.DataFrame(records)
    print(markdown_table(table))
    growth = pd.DataFrame([{"seed": s, **{f"{h} before": round(g["before"][h], 4)
                                          for h in HEADS[:2]},
                            **{f"{h} after": round(g["after"][h], 4) for h in HEADS}}
                           for s, g in grown.items()])
    print("\nAdding the dark head later (old heads' test F1 before and after):")
    print(markdown_table(growth))
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    (work / "results.json").write_text(json.dumps(
        {"variants": records, "add_a_head": growth.to_dict("records")}, indent=2))
    if args.figure:
        figure(table.set_index(pd.Index(list(VARIANTS))), Path(args.figure))


if __name__ == "__main__":
    main()
