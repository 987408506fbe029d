"""The PyTorch reference: torchvision ShuffleNetV2 x0.5, the article's two heads or three outputs.

Runs under the *system* python3 with Debian's `python3-torchvision`, outside the
project's venv (torch is never a dependency of tf-twohead). The bench scripts drive it
as a subprocess and read JSON lines from its stdout.

The recipe is the reference's: PIL decode + `convert("RGB")`, `Resize((S, S))`,
`RandomRotation(10)` (nearest, black fill), `ToTensor`, ImageNet `Normalize`; Adam(lr
1e-3, weight_decay 1e-4, PyTorch's L2-in-the-gradient), `StepLR(4, 0.1)`, label
smoothing 0.1, loss `2 * main + 1 * aux`, batch 64; keep the epoch with the best
validation F1 of the main head (strictly better, so the first of equal epochs).

Modes:
  train  --data DIR --kind two_head|softmax --seed N --epochs E --size S --out DIR
         prints one JSON line per epoch, then writes DIR/test_probs.npy (main, aux
         probabilities per test row, in CSV order) and DIR/result.json.
  speed  --size S --steps N prints training images/s on a fixed batch of 64 (2 threads),
         or with --data through a DataLoader over the train split.

Usage: /usr/bin/python3 bench/torch_reference.py train --data demo_data/fm --kind two_head
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

try:  # PyPI's torchvision is a CUDA build: on a CPU-only torch it needs the shim
    import torch_cpu_shim  # noqa: F401 - ../shared/bench, put on PYTHONPATH by bench/anchors.py
except ImportError:
    pass
import torchvision  # noqa: E402
from PIL import Image
from torchvision import transforms

MAIN_IDS, AUX_IDS = (2,), (1,)  # screen, not a document
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TwoHead(nn.Module):
    """The article's model: ShuffleNetV2 to stage4, then per head conv+BN+ReLU, pool, 1 logit."""

    def __init__(self, width: float = 0.5, head_width: int = 1024):
        super().__init__()
        base = getattr(torchvision.models, f"shufflenet_v2_x{str(width).replace('.', '_')}")()
        self.body = nn.Sequential(base.conv1, base.maxpool, base.stage2, base.stage3, base.stage4)
        channels = base.stage4[-1].branch2[-3].out_channels * 2

        def head():
            return nn.Sequential(nn.Conv2d(channels, head_width, 1, bias=False),
                                 nn.BatchNorm2d(head_width), nn.ReLU(inplace=True),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(head_width, 1))

        self.main, self.aux = head(), head()

    def forward(self, x):
        f = self.body(x)
        return torch.cat([self.main(f), self.aux(f)], dim=1)  # logits (B, 2)


def build(kind: str) -> nn.Module:
    if kind == "two_head":
        return TwoHead()
    return torchvision.models.shufflenet_v2_x0_5(num_classes=3)


def read_csv(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [(p, int(c)) for p, c in csv.reader(f)]


class Split(torch.utils.data.Dataset):
    def __init__(self, root: Path, name: str, tf):
        self.root, self.rows, self.tf = root, read_csv(root / f"{name}.csv"), tf

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, class_id = self.rows[i]
        with Image.open(self.root / path) as img:
            return self.tf(img.convert("RGB")), class_id


def loss_fn(kind: str, smoothing: float):
    ce = nn.CrossEntropyLoss(label_smoothing=smoothing)
    bce = nn.BCEWithLogitsLoss()

    def loss(out, class_id):
        if kind == "softmax":
            return ce(out, class_id)
        targets = torch.stack([_isin(class_id, MAIN_IDS), _isin(class_id, AUX_IDS)], 1)
        targets = targets * (1 - smoothing) + 0.5 * smoothing
        return 2 * bce(out[:, 0], targets[:, 0]) + bce(out[:, 1], targets[:, 1])

    return loss


def _isin(class_id, ids):
    return sum((class_id == i).float() for i in ids)


def head_probs(kind: str, out) -> np.ndarray:
    """(B, 2) probabilities of the main and aux tasks, whatever the model kind."""
    if kind == "softmax":
        p = torch.softmax(out, 1)
        return torch.stack([p[:, list(MAIN_IDS)].sum(1), p[:, list(AUX_IDS)].sum(1)], 1).numpy()
    return torch.sigmoid(out).numpy()


def head_decisions(kind: str, probs: np.ndarray, out) -> np.ndarray:
    if kind == "softmax":  # argmax decision, as the reference's three-output model
        winner = out.argmax(1).numpy()
        return np.stack([np.isin(winner, MAIN_IDS), np.isin(winner, AUX_IDS)], 1)
    return probs >= 0.5


def f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(truth & pred))
    denom = float(np.sum(truth) + np.sum(pred))
    return 2 * tp / denom if denom else 0.0


@torch.no_grad()
def predict(model, loader, kind):
    model.eval()
    probs, decisions, ids = [], [], []
    for x, class_id in loader:
        out = model(x)
        p = head_probs(kind, out)
        probs.append(p)
        decisions.append(head_decisions(kind, p, out))
        ids.append(class_id.numpy())
    return np.concatenate(probs), np.concatenate(decisions), np.concatenate(ids)


def run_train(args) -> None:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    root, out_dir = Path(args.data), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [transforms.Resize((args.size, args.size))]
    tail = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    train_tf = transforms.Compose(base + [transforms.RandomRotation(args.rotation)] + tail)
    eval_tf = transforms.Compose(base + tail)
    g = torch.Generator().manual_seed(args.seed)
    train = torch.utils.data.DataLoader(Split(root, "train", train_tf), args.batch,
                                        shuffle=True, generator=g, num_workers=args.workers)
    val = torch.utils.data.DataLoader(Split(root, "val", eval_tf), 256,
                                      num_workers=args.workers)
    test = torch.utils.data.DataLoader(Split(root, "test", eval_tf), 256,
                                       num_workers=args.workers)
    model = build(args.kind)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.1)
    loss = loss_fn(args.kind, args.smoothing)
    best, best_epoch, best_state = -1.0, 0, None
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        total, seen, t0 = 0.0, 0, time.perf_counter()
        for x, class_id in train:
            opt.zero_grad()
            batch_loss = loss(model(x), class_id)
            batch_loss.backward()
            opt.step()
            total += float(batch_loss) * len(x)
            seen += len(x)
        sched.step()
        _, dec, ids = predict(model, val, args.kind)
        val_f1 = {"main": f1(np.isin(ids, MAIN_IDS), dec[:, 0]),
                  "aux": f1(np.isin(ids, AUX_IDS), dec[:, 1])}
        if val_f1["main"] > best:  # strictly better: the first of equal epochs stays
            best, best_epoch = val_f1["main"], epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        print(json.dumps({"epoch": epoch + 1, "loss": total / seen,
                          "val_main_f1": val_f1["main"], "val_aux_f1": val_f1["aux"],
                          "seconds": time.perf_counter() - t0}), flush=True)
    model.load_state_dict(best_state)
    probs, dec, ids = predict(model, test, args.kind)
    np.save(out_dir / "test_probs.npy", probs)
    np.save(out_dir / "test_decisions.npy", dec)
    result = {"best_epoch": best_epoch, "best_val_main_f1": best,
              "train_seconds": time.perf_counter() - start}
    (out_dir / "result.json").write_text(json.dumps(result))
    print(json.dumps(result), flush=True)


def run_speed(args) -> None:
    """Training images/s at batch 64: a fixed in-memory batch, or the real DataLoader."""
    torch.manual_seed(0)
    model = build(args.kind)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss = loss_fn(args.kind, 0.1)
    if args.data:
        tf = transforms.Compose([transforms.Resize((args.size, args.size)),
                                 transforms.RandomRotation(10), transforms.ToTensor(),
                                 transforms.Normalize(MEAN, STD)])
        loader = torch.utils.data.DataLoader(Split(Path(args.data), "train", tf), 64,
                                             shuffle=True, drop_last=True,
                                             num_workers=args.workers)
        batches = (b for _ in range(1000) for b in loader)
    else:
        x = torch.randn(64, 3, args.size, args.size)
        y = torch.randint(0, 3, (64,))
        batches = ((x, y) for _ in range(10 ** 6))
    times = []
    t = time.perf_counter()
    for step, (x, y) in enumerate(batches):
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
        now = time.perf_counter()
        times.append(now - t)
        t = now
        if step + 1 == args.steps + 3:
            break
    print(json.dumps({"img_s": 64 / statistics.median(times[3:]), "threads": args.threads,
                      "torch": torch.__version__}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["train", "speed"])
    p.add_argument("--data")
    p.add_argument("--kind", default="two_head", choices=["two_head", "softmax"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--rotation", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)  # Debian's build defaults to one thread
    (run_train if args.mode == "train" else run_speed)(args)


if __name__ == "__main__":
    main()
