"""Compare evaluated runs: the reference's results table, and their training curves.

Reads only the `metrics.json` and `history.csv` files runs and `evaluate` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tf_twohead.core.api import public
from tf_twohead.core.run_folder import HISTORY, test_metrics_of


def histories(run_dirs: list[str | Path]) -> dict[str, pd.DataFrame]:
    """Each run folder's `history.csv`, keyed by the folder's name (made unique)."""
    out = {}
    for run in run_dirs:
        path = Path(run) / HISTORY
        if not path.is_file():
            raise FileNotFoundError(f"No {path}: pass run folders that have trained.")
        label = Path(run).name
        while label in out:
            label = f"{Path(run).parent.name}/{label}"
        out[label] = pd.read_csv(path)
    return out


def has_metrics(path: str | Path) -> bool:
    """Whether `compare` finds evaluated metrics for a run folder or model file."""
    return test_metrics_of(path).is_file()


@public
def compare(paths: list[str | Path], heads: list[str] | None = None) -> pd.DataFrame:
    """The reference's results table for several evaluated runs.

    Per head: precision, recall, F1, AUC and, for runs evaluated with
    `--target-precision P`, the recall at the validation threshold reaching P (empty
    where no threshold reached it). Softmax-kind runs (the baselines, the combined model)
    add their class `accuracy` and `top5`; columns no run has are left out.

    Args:
        paths: run folders (their `metrics.json`), model files (the metrics
            `evaluate` wrote for them) or metrics `.json` files.
        heads: the heads whose precision and recall are shown; None: every head the
            runs were evaluated on, in the order they appear.
    """
    results = []
    for p in paths:
        metrics_json = test_metrics_of(p)
        if not metrics_json.is_file():
            raise FileNotFoundError(
                f"No {metrics_json}: run `tf-twohead evaluate {p}` first.")
        results.append(json.loads(metrics_json.read_text()))
    if heads is None:
        heads = list(dict.fromkeys(name for m in results for name in m["heads"]))
    rows = []
    for m in results:
        fmt = m.get("format", "keras")
        fmt += "" if m.get("quantization", "none") == "none" else f" {m['quantization']}"
        row = {"model": f"{m['exp']} ({m['kind']}, {fmt})", "img size": m["img_size"]}
        target = m.get("at_target_precision", {})
        for head in heads:
            h = m["heads"].get(head, {})
            for key in ("precision", "recall", "f1", "auc"):
                row[f"{head} {key}"] = h.get(key, float("nan"))
            at = target.get("heads", {}).get(head)
            row[f"{head} recall@P{target.get('target', '')}"] = (
                at["recall"] if at and at.get("reached_on_val", True) else float("nan"))
        row["accuracy"] = m.get("classes", {}).get("accuracy", float("nan"))
        row["top5"] = m.get("classes", {}).get("top5", float("nan"))
        row["latency ms"] = m["latency_ms"]
        row["params"] = m.get("params", "")
        row["size MB"] = m["model_bytes"] / 1e6
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [c for c in table.columns if table[c].isna().all()]
    return table.drop(columns=empty)  # e.g. class accuracy only when a softmax run is there
