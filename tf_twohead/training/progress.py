"""What a run says while it trains: a start summary, one compact line per epoch, and a
closing line with the best epoch and what to run next.

Epochs are counted from 1 everywhere a person reads them: these lines, `history.csv`,
`train_state.json` and the plots.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras

from tf_twohead.core.defaults import SOFTMAX_KINDS
from tf_twohead.core.runtime import threads_text
from tf_twohead.data.targets import head_answers, known


def run_summary(cfg, splits: dict, model) -> str:
    """The start summary: the run folder, the model, the machine, and the data per split
    with each head's positives (a head without them would stop the run already), and,
    where some answers are unknown (per-head columns), positives / known answers."""
    import tensorflow as tf

    m = cfg.model
    params = model.count_params()
    where = ", ".join(sorted({d.device_type for d in tf.config.list_logical_devices()}))
    if keras.backend.backend() == "jax":
        import jax

        where = (f"{jax.device_count()} {jax.devices()[0].platform.upper()} device(s) with "
                 f"Keras on JAX, {jax.process_count()} process(es)")
    heads = list(m.heads)
    lines = [f"Run {cfg.run_dir}: {m.kind}, {m.backbone} x{m.width}, {cfg.data.img_size} px, "
             f"{params:,} parameters ({params * 4 / 1e6:.1f} MB as float32); "
             f"{threads_text()} on {where}",
             f"  data {cfg.data.root}:"]
    table = []
    for name, split in splits.items():
        answers = head_answers(split.rows, m.heads)
        table.append((name, [(int((answers[h] == 1).sum()), int(known(answers[h]).sum()))
                             for h in heads], len(split)))
    partly = any(count < total for _, cells, total in table for _, count in cells)
    width, title = (16, "+/known") if partly else (10, "+")
    lines.append("    split " + "".join(f"{h + title:>{width}}" for h in heads)
                 + f"{'images':>10}")
    for name, cells, total in table:
        shown = [f"{p:,}/{k:,}" if partly else f"{p:,}" for p, k in cells]
        lines.append(f"    {name:5} " + "".join(f"{c:>{width}}" for c in shown)
                     + f"{total:>10,}")
    return "\n".join(lines)


def epoch_line(epoch: int, epochs: int, logs: dict, heads, kind: str, seconds: float,
               saved_best: bool) -> str:
    """`epoch 3/9  loss 0.412  val_loss 0.398  val F1 main 0.612 aux 0.981  12.3 s  * best`."""
    parts = [f"epoch {epoch}/{epochs}", f"loss {logs.get('loss', float('nan')):.4f}",
             f"val_loss {logs.get('val_loss', float('nan')):.4f}"]
    if kind in SOFTMAX_KINDS and "val_accuracy" in logs:
        parts.append(f"val acc {logs['val_accuracy']:.3f}")
    f1 = [f"{h} {logs[f'val_{h}_f1']:.3f}" for h in heads if f"val_{h}_f1" in logs]
    if f1:
        parts.append("val F1 " + " ".join(f1))
    parts.append(f"{seconds:.1f} s")
    if saved_best:
        parts.append("* best.keras")
    return "  ".join(parts)


def epoch_lines(cfg, checkpoint, heads=None, stream=None) -> list:
    """The callbacks of the compact output: a line per epoch, and on a terminal a step
    counter (a per-step hook, so only where someone watches)."""
    stream = stream or sys.stdout
    line = EpochLine(cfg, checkpoint, heads, stream)
    return [StepCounter(stream), line] if stream.isatty() else [line]


class StepCounter(keras.callbacks.Callback):
    """`epoch 3  step 120/375`, rewritten in place on a terminal while an epoch runs."""

    def __init__(self, stream):
        super().__init__()
        self.stream, self.epoch = stream, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        steps = self.params.get("steps")
        if steps:
            print(f"\repoch {self.epoch}  step {batch + 1}/{steps}", end="", file=self.stream,
                  flush=True)


class EpochLine(keras.callbacks.Callback):
    """One compact line per epoch instead of Keras' progress bar with every metric of
    every head."""

    def __init__(self, cfg, checkpoint, heads=None, stream=None):
        super().__init__()
        self.cfg, self.checkpoint = cfg, checkpoint
        self.heads = list(cfg.model.heads if heads is None else heads)
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.epochs = None

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        line = epoch_line(epoch + 1, self.epochs, logs or {}, self.heads, self.cfg.model.kind,
                          time.perf_counter() - self.start, self.checkpoint.saved_best)
        print(("\r" + " " * 40 + "\r" if self.tty else "") + line, file=self.stream, flush=True)


def closing_line(state: dict, run_dir: Path, seconds: float) -> str:
    """`Done in 3 min 12 s: best val_main_f1 0.6630 at epoch 7 -> ...; next: ...`."""
    minutes, secs = divmod(int(seconds), 60)
    took = f"{minutes} min {secs} s" if minutes else f"{secs} s"
    return (f"Done in {took}: best {state['monitor']} {state['best']:.4f} at epoch "
            f"{state['best_epoch']} -> {run_dir / 'best.keras'}\n"
            f"Next: tf-twohead evaluate {run_dir}   (then: tf-twohead convert {run_dir} "
            "--quantize dynamic)")
