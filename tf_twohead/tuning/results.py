"""A search's results: the trials table, Pareto fronts, constraints and the best config.

Reads every `trial_*/trial.json` of a Keras Tuner project folder as plain JSON (so it
works on the chief, on any machine sharing the folder, and after the search, without
importing Keras Tuner or TensorFlow), and writes beside them `trials.csv`, `trials.md`,
`pareto.csv`, `pareto.png` and `best_config.yaml`.

Keras Tuner ranks trials by one number. The user's question is a trade-off: the
smallest and fastest heads that keep the main task's accuracy. So the fronts are
computed here, after the search: a trial is on the size front when no other trial is
at least as accurate *and* at least as small, one of them strictly (the same for
latency). "Best" is the most accurate trial that meets `tune.constraints`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from tf_twohead.config import Config, load_config, to_yaml
from tf_twohead.core import tables
from tf_twohead.core.best import best_row
from tf_twohead.core.fileio import atomic_write_text
from tf_twohead.core.run_folder import CONFIG, TRIAL_FILE, TRIAL_PREFIX
from tf_twohead.plots.pareto import plot_pareto
from tf_twohead.tuning.space import plain_value

FIGURES = ("params", "tflite_kb", "latency_ms", "train_seconds", "best_epoch", "parity_passed")
BUDGET = "tuner/epochs"  # Hyperband's epochs for a trial


def load_trials(cfg: Config, space_keys: list[str]) -> pd.DataFrame:
    """One row per trial: id, status, searched values, objective, head F1s and figures."""
    rows = []
    names = [cfg.objective] + [f"val_{h}_f1" for h in cfg.model.heads] + list(FIGURES)
    for path in sorted(cfg.run_dir.glob(f"{TRIAL_PREFIX}*/{TRIAL_FILE}")):
        trial = json.loads(path.read_text())
        values = trial["hyperparameters"]["values"]
        row = {"trial": trial["trial_id"], "status": trial["status"]}
        row.update({key: values.get(key) for key in space_keys})
        if BUDGET in values:
            row["epochs"] = values[BUDGET]
        metrics = trial["metrics"]["metrics"]
        for name in dict.fromkeys(names):
            row[name] = last_value(metrics.get(name))
        rows.append(row)
    return pd.DataFrame(rows)


def last_value(history: dict | None) -> float:
    """The last observation of one metric in a `trial.json` (Keras Tuner's
    `MetricHistory.get_last_value`: the latest step, averaged over executions)."""
    observations = sorted((history or {}).get("observations", []), key=lambda o: o["step"])
    return float(np.mean(observations[-1]["value"])) if observations else np.nan


def pareto_mask(objective, cost, maximize: bool = True) -> np.ndarray:
    """True for the trials no other trial dominates on (objective, cost).

    Dominating means at least as good on both (higher objective when `maximize`,
    lower cost) and strictly better on one.
    """
    score = np.asarray(objective, float) * (1.0 if maximize else -1.0)
    cost = np.asarray(cost, float)
    keep = np.ones(len(score), bool)
    for i in range(len(score)):
        better = (score >= score[i]) & (cost <= cost[i]) & ((score > score[i]) | (cost < cost[i]))
        keep[i] = not better.any()
    return keep


def meets_constraints(table: pd.DataFrame, constraints: dict[str, float]) -> pd.Series:
    """Whether each trial's figures are within every `tune.constraints` bound."""
    ok = pd.Series(True, index=table.index)
    for key, bound in constraints.items():
        ok &= table[key] <= bound
    return ok


def analyse(cfg: Config, table: pd.DataFrame) -> pd.DataFrame:
    """Completed trials with `meets_constraints`, `size_front`, `latency_front` columns.

    For Hyperband the same configuration runs at several budgets; only its largest
    budget is compared.
    """
    done = table[table["status"] == "COMPLETED"].dropna(subset=[cfg.objective, "tflite_kb"])
    if "epochs" in done:
        keys = [c for c in done.columns if c not in ("trial", "status", "epochs")
                and c not in FIGURES and not c.startswith("val_")]
        done = done.sort_values("epochs").groupby(keys, dropna=False).tail(1)
    done = done.copy()
    maximize = cfg.tune.direction == "max"
    done["meets_constraints"] = meets_constraints(done, dict(cfg.tune.constraints))
    done["size_front"] = pareto_mask(done[cfg.objective], done["tflite_kb"], maximize)
    done["latency_front"] = pareto_mask(done[cfg.objective], done["latency_ms"], maximize)
    return done.sort_values(cfg.objective, ascending=not maximize, kind="stable")


def best_trial(cfg: Config, done: pd.DataFrame) -> pd.Series | None:
    """The most accurate completed trial that meets the constraints (ties: smaller file)."""
    ok = done[done["meets_constraints"]]
    if ok.empty:
        return None
    return best_row(ok, cfg.objective, "tflite_kb", cfg.tune.direction == "max")


def write_best_config(cfg: Config, trial_id: str, out) -> None:
    """The best trial's own config, renamed `<exp>_best` so training it never writes
    into the search folder. `tf-twohead train --config` takes it as it is."""
    trial_cfg = load_config(cfg.run_dir / f"{TRIAL_PREFIX}{trial_id}" / CONFIG)
    best = dataclasses.replace(trial_cfg, exp=f"{cfg.exp}_best", output_dir=cfg.output_dir,
                               data=dataclasses.replace(trial_cfg.data,
                                                        cache_dir=cfg.data.cache_dir))
    header = (f"# Best trial {trial_id} of the search {cfg.run_dir} (tune.objective="
              f"{cfg.objective}, constraints {dict(cfg.tune.constraints) or 'none'}).\n"
              f"# It trained train.epochs={best.train.epochs} epochs; raise it for a longer run:\n"
              f"#   tf-twohead train --config {out} train.epochs=N\n")
    atomic_write_text(out, header + to_yaml(best))


def write_reports(cfg: Config, space) -> dict:
    """Write the tables, fronts, plot and best config of the search in `cfg.run_dir`;
    print the summary table. Returns `{"run_dir", "trials", "best"}`."""
    run_dir = cfg.run_dir
    keys = [d.key for d in space]
    table = load_trials(cfg, keys)
    if table.empty:
        print(f"[tune] {run_dir}: no trials yet.")
        return {"run_dir": str(run_dir), "trials": 0, "best": None}
    done = analyse(cfg, table)
    table = table.merge(done[["trial", "meets_constraints", "size_front", "latency_front"]],
                        on="trial", how="left")
    atomic_write_text(run_dir / "trials.csv", table.to_csv(index=False))
    atomic_write_text(run_dir / "trials.md", _markdown(table, cfg))
    front = done[done["size_front"] | done["latency_front"]].sort_values("tflite_kb")
    atomic_write_text(run_dir / "pareto.csv", front.to_csv(index=False))
    best = best_trial(cfg, done)
    if not done.empty:
        plot_pareto(done, cfg.objective, keys, run_dir / "pareto.png",
                            dict(cfg.tune.constraints),
                            None if best is None else best["trial"])
    best_path = run_dir / "best_config.yaml"
    if best is not None:
        write_best_config(cfg, best["trial"], best_path)
    elif best_path.exists():
        best_path.unlink()  # a stale best from other constraints would mislead

    counts = table["status"].value_counts().to_dict()
    print(f"\n[tune] {run_dir}: {len(table)} trials "
          + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    print(_markdown(done.drop(columns=["status"]), cfg))
    if best is None:
        print(f"[tune] No completed trial meets tune.constraints={dict(cfg.tune.constraints)}; "
              "no best_config.yaml. Relax them or widen the space.")
        summary_best = None
    else:
        if done[cfg.objective].nunique() == 1 and len(done) > 1:
            print(f"[tune] All {len(done)} completed trials tie at {cfg.objective}="
                  f"{best[cfg.objective]:.4f}: none is more accurate; the smallest file is "
                  "named below. Train longer (tune.epochs) or widen the space to separate them.")
        print(f"[tune] Best: trial {best['trial']} {cfg.objective}="
              f"{best[cfg.objective]:.4f}, {best['tflite_kb']:.0f} KiB, "
              f"{best['latency_ms']:.2f} ms -> {best_path}")
        summary_best = {"trial": best["trial"], "config": str(best_path),
                        **{k: plain_value(best[k]) for k in [*keys, cfg.objective, *FIGURES]}}
    print(f"[tune] Fronts: {run_dir / 'pareto.csv'}, {run_dir / 'pareto.png'}")
    return {"run_dir": str(run_dir), "trials": len(table), "best": summary_best}


def _markdown(table: pd.DataFrame, cfg: Config) -> str:
    shown = table.copy()
    for column in ("params", "best_epoch", "epochs"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    for column in ("meets_constraints", "size_front", "latency_front", "parity_passed"):
        if column in shown:
            shown[column] = shown[column].map(
                lambda v: "" if pd.isna(v) else ("yes" if v else "no"))
    return tables.markdown_table(shown, "{:.4g}")
