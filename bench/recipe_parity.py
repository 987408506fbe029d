"""Recipe parity: tf-twohead against the PyTorch reference, same data, recipe and budget.

Trains, for each seed, the reference's two models in both frameworks:
  - two-head: ShuffleNetV2 x0.5 + the article's two sigmoid heads (main = screen, aux =
    not a document), loss 2 * main + 1 * aux;
  - three-output: ShuffleNetV2 x0.5 + Dense(3) softmax.
The PyTorch side is `bench/torch_reference.py` under the system python3 (Debian's
python3-torchvision); the tf-twohead side is `training.train` with the default config.
Both keep the epoch with the best validation main F1 and are then scored identically on
the test split:
  - main F1 over the document and screen rows (as the reference scores it),
  - aux F1 over all rows.
Decisions: sigmoid >= 0.5 for a head, argmax for the three-output model.

Each finished run is kept under --out (rerunning skips it unless --overwrite), so the
frameworks can be run separately (--frameworks torch, then --frameworks tf) and an
ablation can be added with --tf-override model.init=keras --tag keras_init.

Usage:
  python bench/recipe_parity.py --data demo_data/fm6k              # build it first, see below
  python bench/recipe_parity.py --data demo_data/fm6k --frameworks tf \
      --tf-override model.init=keras --tag keras_init
The data: tf-twohead data fashion-mnist demo_data/fm6k --size 64 --train 6000 --val 1000 --test 2000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from timing import cpu_flags  # bench/ is the script's folder

HERE = Path(__file__).resolve().parent
KINDS = {"two_head": "configs/two_head.yaml", "softmax": "configs/three_class.yaml"}
LABELS = {"two_head": "two-head", "softmax": "three-output"}
MAIN_IDS, AUX_IDS, DOCUMENT = (2,), (1,), 0


def f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(truth & pred))
    denom = float(np.sum(truth) + np.sum(pred))
    return 2 * tp / denom if denom else 0.0


def score(decisions: np.ndarray, class_ids: np.ndarray) -> dict:
    """The reference's test scores from (N, 2) main/aux decisions and the true class ids."""
    rows = np.isin(class_ids, (DOCUMENT, *MAIN_IDS))  # main: documents against screens
    return {"main_f1": f1(np.isin(class_ids[rows], MAIN_IDS), decisions[rows, 0].astype(bool)),
            "aux_f1": f1(np.isin(class_ids, AUX_IDS), decisions[:, 1].astype(bool))}


def test_class_ids(data: Path) -> np.ndarray:
    with open(data / "test.csv", newline="", encoding="utf-8-sig") as f:
        return np.array([int(c) for _, c in csv.reader(f)])


def run_torch(args, kind: str, seed: int, out: Path) -> None:
    cmd = [args.torch_python, str(HERE / "torch_reference.py"), "train", "--data", args.data,
           "--kind", kind, "--seed", str(seed), "--epochs", str(args.epochs), "--size",
           str(args.size), "--batch", str(args.batch), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"PyTorch reference failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    epochs = [json.loads(line) for line in done.stdout.splitlines() if '"epoch"' in line]
    (out / "epochs.json").write_text(json.dumps(epochs))


def run_tf(args, kind: str, seed: int, out: Path) -> None:
    cmd = [sys.executable, __file__, "--tf-child", kind, "--seed", str(seed), "--data",
           args.data, "--epochs", str(args.epochs), "--size", str(args.size), "--batch",
           str(args.batch), "--out", str(out),
           *[f"--tf-override={o}" for o in args.tf_override]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"tf-twohead run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")


def tf_child(args) -> None:
    """One tf-twohead run in its own process (fresh TensorFlow state per run)."""
    import pandas as pd

    from tf_twohead import config
    from tf_twohead.core.runtime import set_threads
    from tf_twohead.data.pipeline import checked_splits
    from tf_twohead.keras_files import load as saving
    from tf_twohead.training import run as training

    set_threads(args.threads)
    out = Path(args.out)
    kind = args.tf_child
    cfg = config.load_config(HERE.parent / KINDS[kind], [
        f"data.root={args.data}", f"data.img_size={args.size}", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch}", f"train.seed={args.seed}", f"output_dir={out}",
        "exp=run", *args.tf_override])
    state = training.train(cfg, overwrite=True, verbose=0)
    model = saving.load_model(cfg.run_dir / "best.keras")
    test = checked_splits(cfg, ("test",), progress=False)["test"]
    pred = model.predict(np.asarray(test.images), batch_size=256, verbose=0)
    if kind == "softmax":
        winner = pred["probs"].argmax(1)
        decisions = np.stack([np.isin(winner, MAIN_IDS), np.isin(winner, AUX_IDS)], 1)
    else:
        decisions = np.concatenate([pred["main"] >= 0.5, pred["aux"] >= 0.5], 1)
    np.save(out / "test_decisions.npy", decisions)
    history = pd.read_csv(cfg.run_dir / "history.csv")
    epochs = [{"epoch": int(r.epoch), "loss": float(r.loss),  # history.csv counts from 1
               "val_main_f1": float(r.val_main_f1), "val_aux_f1": float(r.val_aux_f1)}
              for r in history.itertuples()]
    (out / "epochs.json").write_text(json.dumps(epochs))
    (out / "result.json").write_text(json.dumps({"best_epoch": state["best_epoch"],
                                                 "best_val_main_f1": state["best"]}))



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="saved_models/recipe_parity")
    p.add_argument("--seeds", default="0,1,42")
    p.add_argument("--kinds", default="two_head,softmax")
    p.add_argument("--frameworks", default="torch,tf")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tf-override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", default="default", help="name of the tf-twohead variant")
    p.add_argument("--torch-python", default="/usr/bin/python3")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--tf-child", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.tf_child:
        return tf_child(args)

    seeds = [int(s) for s in args.seeds.split(",")]
    kinds = args.kinds.split(",")
    frameworks = {"torch": "pytorch", "tf": f"tf-{args.tag}"}
    root = Path(args.out)
    for fw in args.frameworks.split(","):
        for kind in kinds:
            for seed in seeds:
                out = root / frameworks[fw] / f"{kind}-seed{seed}"
                if (out / "result.json").is_file() and not args.overwrite:
                    continue
                out.mkdir(parents=True, exist_ok=True)
                print(f"training {frameworks[fw]} {kind} seed {seed} ...", flush=True)
                (run_torch if fw == "torch" else run_tf)(args, kind, seed, out)
    report(root, Path(args.data), seeds, kinds)


def report(root: Path, data: Path, seeds: list[int], kinds: list[str]) -> None:
    """Print the per-epoch validation curves and the test table of every variant found."""
    ids = test_class_ids(data)
    variants = sorted(d.name for d in root.iterdir() if d.is_dir())
    print(f"\nCPU vector extensions: {cpu_flags()}; {os.cpu_count()} CPUs; data {data}")
    print("\nValidation main F1 per epoch (seed-mean), then the kept epoch per seed")
    for kind in kinds:
        for variant in variants:
            curves, kept = [], []
            for seed in seeds:
                run = root / variant / f"{kind}-seed{seed}"
                if (run / "epochs.json").is_file():
                    curves.append([e["val_main_f1"] for e in json.loads(
                        (run / "epochs.json").read_text())])
                    kept.append(json.loads((run / "result.json").read_text())["best_epoch"])
            if curves:
                mean = [statistics.mean(c[i] for c in curves) for i in range(min(map(len, curves)))]
                print(f"  {LABELS[kind]:13s} {variant:22s} "
                      + " ".join(f"{v:.3f}" for v in mean) + f"   kept {kept}")
    print("\nTest F1, main head over document+screen rows; aux over all rows "
          f"(seeds {', '.join(map(str, seeds))})\n")
    print("| model | framework | main F1 per seed | main F1 mean | aux F1 mean |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        for variant in variants:
            scores = []
            for seed in seeds:
                run = root / variant / f"{kind}-seed{seed}"
                if (run / "test_decisions.npy").is_file():
                    scores.append(score(np.load(run / "test_decisions.npy"), ids))
            if scores:
                mains = [s["main_f1"] for s in scores]
                print(f"| {LABELS[kind]} | {variant} | {' / '.join(f'{m:.2f}' for m in mains)} "
                      f"| **{statistics.mean(mains):.3f}** | "
                      f"{statistics.mean(s['aux_f1'] for s in scores):.3f} |")


if __name__ == "__main__":
    main()
