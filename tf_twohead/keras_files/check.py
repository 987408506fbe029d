"""Check a `.keras` file before Keras builds anything from it: archive, config, parameters.

A `.keras` file is a zip of `metadata.json`, `config.json`, `model.weights.h5` and
perhaps `assets/`. Keras builds the whole model from the config, allocating every
variable, *before* it reads a weight, and its own guards start at 4 GiB per member or
HDF5 dataset. So a 2 KB file that declares one huge `Dense` took 7 GB of memory before
Keras refused it, a 1 MB config took gigabytes, and a small assets folder unpacked
gigabytes into the temporary folder. Here, in order, before Keras loads the file:

1. the archive: a zip, at most `MAX_MEMBERS` members, none unpacking to more than
   `MAX_RATIO` times its stored bytes (past `RATIO_FLOOR`), `config.json` at most
   `MAX_CONFIG_BYTES`, `assets/` at most `MAX_ASSETS_BYTES` in all;
2. the weights file: the HDF5 datasets' declared shapes (metadata only, nothing read)
   hold at most `MAX_WEIGHT_BYTES`;
3. the config: JSON of bounded depth, at most `MAX_CONFIG_OBJECTS` serialized objects,
   built by Keras under a `keras.StatelessScope`, where a variable has a shape but no
   memory, and its parameters counted against `MAX_PARAMETERS`.

Each refusal is a `ModelFileError` naming the file, what it declares and the bound.

Example:

>>> check_keras_file("saved_models/two_head/best.keras")  # raises or returns the count
552498
"""

from __future__ import annotations

import json
import math
import zipfile

from tf_twohead.core.errors import ModelFileError

MAX_MEMBERS = 10_000
MAX_RATIO, RATIO_FLOOR = 100, 1 << 20  # Keras stores members uncompressed (ratio 1)
MAX_CONFIG_BYTES = 2 << 20  # a two-head ShuffleNetV2's config is 0.22 MB, any width
MAX_ASSETS_BYTES = 64 << 20  # tf-twohead's models have no assets
MAX_CONFIG_OBJECTS = 20_000  # layers, initializers, ...: ~1,000 in a two-head model
# 50 M parameters: 9x the largest backbone shipped (ShuffleNetV2 x2.0, 5.4 M). A
# compiled save also holds the optimizer's two slots per weight.
MAX_PARAMETERS = 50_000_000
MAX_WEIGHT_BYTES = 4 * MAX_PARAMETERS * 3 + (64 << 20)
CONFIG, WEIGHTS, ASSETS = "config.json", "model.weights.h5", "assets/"


def check_keras_file(path) -> int:
    """Refuse a `.keras` file whose archive, weights or config would cost unbounded memory,
    time or disk; return the parameters its model declares.

    The optimizer a compiled save holds is not built here: its state mirrors the
    weights, which the weights file's declared bytes bound.

    Args:
        path: str. The `.keras` file.

    Raises:
        ModelFileError: naming the file, what it declares and the bound it passes.
    """
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, where)
            _check_weights(archive, where)
            config = _read_config(archive, where)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
            NotImplementedError) as e:
        raise ModelFileError(f"{where}: not a readable .keras archive ({type(e).__name__}: "
                             f"{str(e)[:200]})") from None
    if isinstance(config, dict):
        config["compile_config"] = None
    return _count_parameters(config, where)


def _check_archive(archive: zipfile.ZipFile, where: str) -> None:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise ModelFileError(f"{where}: {len(members):,} archive members, more than "
                             f"{MAX_MEMBERS:,}; not a model tf-twohead or Keras wrote")
    assets = 0
    for info in members:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise ModelFileError(
                f"{where}: member {info.filename[:100]!r} unpacks to {info.file_size:,} bytes "
                f"from {info.compress_size:,} (more than {MAX_RATIO}x): a decompression bomb")
        if info.filename.startswith(ASSETS):
            assets += info.file_size
    if assets > MAX_ASSETS_BYTES:
        raise ModelFileError(f"{where}: assets of {assets:,} bytes, more than "
                             f"{MAX_ASSETS_BYTES >> 20} MiB (Keras unpacks them to disk)")
    if CONFIG not in archive.NameToInfo:
        raise ModelFileError(f"{where}: no {CONFIG}; not a .keras model file")
    size = archive.getinfo(CONFIG).file_size
    if size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{where}: {CONFIG} of {size:,} bytes, more than "
                             f"{MAX_CONFIG_BYTES >> 20} MiB")


def _check_weights(archive: zipfile.ZipFile, where: str) -> None:
    """The HDF5 datasets' declared bytes, from their shapes alone (no data is read)."""
    if WEIGHTS not in archive.NameToInfo:
        return  # Keras says what is missing
    import h5py  # Keras' own dependency

    total = 0

    def add(_name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += math.prod(obj.shape or ()) * obj.dtype.itemsize
    try:
        with archive.open(WEIGHTS) as member, h5py.File(member, "r") as h5:
            h5.visititems(add)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ModelFileError(f"{where}: {WEIGHTS} is not a readable HDF5 file "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
    if total > MAX_WEIGHT_BYTES:
        raise ModelFileError(f"{where}: {WEIGHTS} declares {total:,} bytes of weights, more "
                             f"than {MAX_WEIGHT_BYTES >> 20} MiB ({MAX_PARAMETERS:,} "
                             "parameters and an optimizer's state)")


def _read_config(archive: zipfile.ZipFile, where: str):
    with archive.open(CONFIG) as member:
        text = member.read(MAX_CONFIG_BYTES + 1)
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{where}: {CONFIG} unpacks past {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{where}: {CONFIG} is not readable JSON ({type(e).__name__}: "
                             f"{str(e)[:100]})") from None
    objects = _count_objects(config)
    if objects > MAX_CONFIG_OBJECTS:
        raise ModelFileError(f"{where}: {CONFIG} declares {objects:,} objects (layers, "
                             f"initializers, ...), more than {MAX_CONFIG_OBJECTS:,}")
    return config


def _count_objects(config) -> int:
    """Serialized Keras objects (`{"class_name": ..., "config": ...}`), counted without
    recursion (JSON's parser already bounded the depth)."""
    count, stack = 0, [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += "class_name" in node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _count_parameters(config, where: str) -> int:
    """Build the model as Keras would, but stateless: variables get shapes, not memory."""
    import keras
    from keras.src.backend.common import global_state  # the deferred variables' list

    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
            count = sum(math.prod(v.shape) for v in getattr(model, "weights", []))
    except Exception as e:  # Keras raises many types for a config it refuses
        raise ModelFileError(f"{where}: not a model Keras can load safely "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:300]}). Only "
                             "load .keras files written by tf-twohead or Keras from sources "
                             "you trust.") from None
    finally:
        # Never leave these for a later StatelessScope to allocate.
        global_state.set_global_attribute(key, before)
    if count > MAX_PARAMETERS:
        raise ModelFileError(f"{where}: the model declares {count:,} parameters, more than "
                             f"{MAX_PARAMETERS:,}; not a model tf-twohead trains")
    return count
