"""The configs shipped inside the package, found by name: `--config two_head`.

A `pip install` user has no repository `configs/` folder; the presets live in
`tf_twohead/configs/` (the repository's `configs/` links there), and `tf-twohead config
show NAME` / `config copy NAME FILE` print or copy one, comments included.
"""

from __future__ import annotations

import os
from pathlib import Path

from tf_twohead.core.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs"


def preset_names() -> list[str]:
    """The names of the shipped configs, e.g. `["combined", ..., "two_head"]`."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve(path_or_name: str | os.PathLike) -> Path:
    """A config file: the path as given when it exists, else the preset of that name.

    Raises:
        ConfigError: neither a file nor a preset, naming both.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    name = path.name[:-5] if path.name.endswith(".yaml") else path.name
    preset = PRESETS_DIR / f"{name}.yaml"
    if str(path) in (name, f"{name}.yaml") and preset.is_file():
        return preset
    raise ConfigError(f"Config file not found: {path_or_name}. Give a YAML file or a preset "
                      f"name: {', '.join(preset_names())} (tf-twohead config show NAME).")


def text(name: str) -> str:
    """A preset's YAML text, with its comments."""
    return resolve(name).read_text(encoding="utf-8")
