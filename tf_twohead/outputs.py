"""Where a model's results live: the model a run folder means, and the metrics file
`evaluate` writes for a model and split (and `compare` reads).
"""

from __future__ import annotations

from pathlib import Path


def resolve_model(run_dir_or_model: str | Path) -> Path:
    """A run folder means its `best.keras`; a file is used as it is."""
    path = Path(run_dir_or_model)
    if path.is_dir():
        path = path / "best.keras"
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}. Pass a run folder or a .keras file.")
    return path


def output_prefix(model_path: Path) -> str:
    """Prefix of the files `evaluate` writes: none for a run's `best.keras`, else the
    model's file name, so evaluating `best.tflite` never overwrites `metrics.json`."""
    return "" if model_path.name == "best.keras" else f"{model_path.name}."


def result_file(model_path: Path, name: str, split: str = "test",
                dataset: str | None = None) -> Path:
    """A file `evaluate` writes beside a model: `metrics.json` for a run's `best.keras` on
    its own test split; `metrics_val.json` on val; `metrics@other.json` on another
    dataset; `best.tflite.metrics.json` for another model file. Results on one split or
    dataset never overwrite another's."""
    stem, dot, ext = name.partition(".")
    tag = ("" if split == "test" else f"_{split}") + (f"@{dataset}" if dataset else "")
    return model_path.parent / f"{output_prefix(model_path)}{stem}{tag}{dot}{ext}"


def metrics_file(model_path: Path, split: str = "test", dataset: str | None = None) -> Path:
    """Where `evaluate` writes the metrics of a model on a split (of another dataset)."""
    return result_file(model_path, "metrics.json", split, dataset)


def metrics_path(path: str | Path) -> Path:
    """Where `compare` reads the test metrics of a run folder, a model file or a
    metrics `.json` file."""
    p = Path(path)
    if p.suffix == ".json":
        return p
    return p / "metrics.json" if p.is_dir() else metrics_file(p)
