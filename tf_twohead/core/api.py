"""The public API and the Keras-serializable classes, each from one declaration.

A public name is declared where it is defined, with `@public` (as keras-hub's
`keras_hub_export`); `import tf_twohead` then serves it lazily as `tt.<name>`. A class a
`.keras` file may name is declared with Keras' own
`@keras.saving.register_keras_serializable(package="tf_twohead")`, and the package imports
its module the moment Keras is imported. No list of either is kept by hand: both are
found by reading the package's source text (no import, no TensorFlow), once per process
and only when first needed.

Example:

>>> from tf_twohead.core.api import public
>>> @public
... def train(cfg): ...
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

PACKAGE = "tf_twohead"
_ROOT = Path(__file__).resolve().parents[1]
# `@public` on its own line, any other decorators, then the def or class it declares.
_PUBLIC = re.compile(r"^@public[ \t]*\n(?:@[^\n]*\n)*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)",
                     re.M)
_SERIALIZABLE = re.compile(r"^@keras\.saving\.register_keras_serializable\(", re.M)


def public(obj):
    """Declare `obj` (a function or class) part of the public API, as `tt.<name>`."""
    obj.__tf_twohead_public__ = True
    return obj


@functools.cache
def _modules() -> dict[str, str]:
    """`{dotted module name: source text}` of every module of the package."""
    found = {}
    for path in sorted(_ROOT.rglob("*.py")):
        parts = path.relative_to(_ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path.read_text(encoding="utf-8")
    return found


@functools.cache
def public_names() -> dict[str, str]:
    """`{public name: dotted module that defines it}`; a name declared twice is an error."""
    names: dict[str, str] = {}
    for module, text in _modules().items():
        for name in _PUBLIC.findall(text):
            if name in names:
                raise RuntimeError(f"@public {name} is declared in {names[name]} and {module}")
            names[name] = module
    return names


@functools.cache
def serializable_modules() -> tuple[str, ...]:
    """The modules that define a class registered with `keras.saving`."""
    return tuple(m for m, text in _modules().items() if _SERIALIZABLE.search(text))
