"""`model.init_from`: start from a trained two-head model, to add a question to it later.

The backbone and every head whose name is in both models are loaded exactly (weights
and BatchNorm statistics, layer by layer, by name); a head the new config adds starts
fresh, initialised as any new head; a head of the trained model that the new config
leaves out is refused unless `model.drop_heads` names it, so a head is never lost by a
typo. Layers must match in shape: another width, depth or head width is one error
listing the layers, before any training. The input size may differ (the network is
convolutional up to its pooling).

The usual flow (docs/data.md): the old images keep their old answers and leave the new
head's column empty; the new images answer the new head only; one run on both, perhaps
with `train.freeze_epochs` first, keeps the old heads while the new one learns.

Example:

>>> cfg = tt.load_config("configs/two_head.yaml", ["model.init_from=saved_models/two_head",
...     "model.heads={main: [], aux: [], blurry: []}"])
>>> model = tt.build_model(cfg)  # main and aux as trained; blurry fresh
"""

from __future__ import annotations

from pathlib import Path

from tf_twohead.core.errors import ConfigError, WeightsError
from tf_twohead.core.run_folder import resolve_model


def source_of(spec: str, run_dir: Path | None = None) -> Path:
    """The `.keras` file `model.init_from` names (a run folder means its `best.keras`);
    never one inside `run_dir`, the folder this run writes (or overwrites). Needs no
    TensorFlow: the CLI asks before loading it."""
    try:
        path = resolve_model(spec)
    except FileNotFoundError:
        raise ConfigError(f"model.init_from={spec}: no trained model there. Pass a run "
                          "folder (its best.keras) or a .keras file.") from None
    if path.suffix != ".keras":
        raise ConfigError(f"model.init_from={spec}: a .keras model (or its run folder) is "
                          f"needed to train from. Received: {path.name}")
    if run_dir is not None and Path(run_dir).resolve() in path.resolve().parents:
        raise ConfigError(f"model.init_from={spec} is inside {run_dir}, the folder this run "
                          "writes; copy the model out, or choose another exp=NAME.")
    return path


def init_from(model, spec: str, drop_heads=()) -> dict:
    """Load a trained model's backbone and same-named heads into `model`.

    Args:
        model: keras.Model. A freshly built two-head model (`models.build`).
        spec: str. A run folder or `.keras` file (`model.init_from`).
        drop_heads: list of str. Heads of the trained model to leave out (`model.drop_heads`).

    Returns:
        `{"source", "loaded", "new", "dropped", "layers"}`: head names and the count of
        layers whose weights were copied.

    Raises:
        WeightsError: heads left out without `drop_heads`, or layers of other shapes.
    """
    from tf_twohead.keras_files.load import load_model  # Keras: only when a model loads

    path = source_of(spec)
    source = load_model(path)
    old, new = list(source.output_names), list(model.output_names)
    unknown = sorted(set(drop_heads) - set(old))
    if unknown:
        raise WeightsError(f"model.drop_heads names {', '.join(unknown)}, which {path} has no "
                           f"head of (its heads: {', '.join(old)}).")
    left_out = [h for h in old if h not in new and h not in drop_heads]
    if left_out:
        raise WeightsError(f"{path} answers {', '.join(left_out)}, which this config leaves "
                           "out: list them in model.drop_heads to drop them, or keep them in "
                           "model.heads.")
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    fresh = [h for h in new if h not in old]
    absent = [layer.name for layer in model.layers if layer.weights
              and layer.name not in theirs and not _of_heads(layer.name, fresh)]
    if absent:  # the backbone (or a kept head) would silently start from scratch
        raise WeightsError(f"{path} has no layers {', '.join(absent[:5])}"
                           f"{' ...' if len(absent) > 5 else ''}: another backbone? Start "
                           "from a model of the same model.backbone.")
    pairs = [(layer, theirs[layer.name]) for layer in model.layers
             if layer.weights and layer.name in theirs]
    misfits = [f"{mine.name} {[tuple(w.shape) for w in mine.weights]} here, "
               f"{[tuple(w.shape) for w in other.weights]} there"
               for mine, other in pairs
               if [tuple(w.shape) for w in mine.weights] != [tuple(w.shape) for w in other.weights]]
    if misfits:
        shown = "; ".join(misfits[:5]) + (f"; and {len(misfits) - 5} more" if len(misfits) > 5
                                          else "")
        raise WeightsError(f"{path} does not fit this model (another backbone width, depth or "
                           f"head width?): {shown}. Keep its model.width, model.stage_repeats "
                           "and head widths, or rename a head to start it fresh.")
    for mine, other in pairs:
        mine.set_weights(other.get_weights())
    return {"source": str(path), "loaded": [h for h in new if h in old], "new": fresh,
            "dropped": [h for h in old if h not in new], "layers": len(pairs)}


def _of_heads(layer: str, heads: list[str]) -> bool:
    """Whether a layer belongs to one of `heads` (`<head>`, `<head>_conv`, ...)."""
    return any(layer == h or layer.startswith(f"{h}_") for h in heads)
