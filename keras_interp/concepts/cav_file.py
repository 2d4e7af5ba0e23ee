"""CAVlib's `.cav` file format: reading, atomic writing and validation.

File format (CAVlib's, byte for byte): one msgpack map with the keys `vector`
(array of float32), `id` (a UUID string), `model_layer` (a string) and
`metadata` (a map), then any other keys read from the file (CAVstudio's `stats`)
passed through unchanged. A CAV on a user model stores the layer's path in
`model_layer` (e.g. `"mobilenetv2_1.00_160/out_relu"`) and a description of the
model under the extra key `"model"` (`class`, `name`, `input_value_range`,
`image_size`); CAVlib itself reads such a file and keeps `"model"` as an extra
key. The weights are not stored: give the model back to `CAV.load(path,
model=...)` (or to `score(..., model=...)`) to score images.

`CAV.to_dict`, `CAV.from_dict`, `CAV.load` and `CAV.save` are the public API;
they call the functions here.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from keras_interp._validation import received
from keras_interp.concepts.activations import (
    CAVLIB_SIZES,
    cavlib_layers,
    describe_model,
)

if TYPE_CHECKING:
    from keras_interp.concepts.cav import CAV

__all__ = [
    "MODEL_KEY",
    "cav_to_dict",
    "check_cavlib_size",
    "parse_cav_dict",
    "read_cav_file",
    "write_cav_file",
]

#: The extra key under which a user model is described in a `.cav` file.
MODEL_KEY = "model"

_REQUIRED_KEYS = ("vector", "id", "model_layer")


def cav_to_dict(cav: CAV) -> dict[str, Any]:
    """CAVlib's dict of `cav`: `vector` (list), `id` (str), `model_layer` (str),
    `metadata`, then the extra keys (and `"model"` for a user model)."""
    data = {
        "vector": cav.vector.tolist(),
        "id": str(cav.id),
        "model_layer": cav.layer_name,
        "metadata": copy.deepcopy(dict(cav.metadata)),
    }
    data.update(copy.deepcopy(dict(cav.extra)))
    if cav.model is not None and data["model_layer"] not in cavlib_layers():
        data[MODEL_KEY] = describe_model(cav.model)
    return data


def parse_cav_dict(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(fields, extra)` of a CAV's dict: `fields` holds the `CAV` constructor's
    arguments (`id`, `vector`, `model_layer`, `metadata`), `extra` the other
    keys. Checks the keys and the types the constructor does not check."""
    if not isinstance(data, Mapping):
        raise TypeError(f"A CAV must be a map. {received('data', data)}")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"A CAV needs the keys {', '.join(_REQUIRED_KEYS)}; missing "
            f"{', '.join(missing)}. {received('data keys', list(data))}"
        )
    rest = dict(data)
    vector, model_layer = rest.pop("vector"), rest.pop("model_layer")
    if not isinstance(vector, (list, tuple, np.ndarray)):
        raise TypeError(f"`vector` must be an array. {received('vector', vector)}")
    if not isinstance(model_layer, str):
        raise TypeError(
            f"`model_layer` must be a string. {received('model_layer', model_layer)}"
        )
    fields = {
        "id": rest.pop("id"),
        "vector": vector,
        "model_layer": model_layer,
        "metadata": rest.pop("metadata", None),
    }
    return fields, rest


def check_cavlib_size(model_layer: str, vector: np.ndarray) -> None:
    """A CAVlib layer string fixes the vector's length: raise if it differs."""
    expected = CAVLIB_SIZES.get(model_layer)
    if expected is not None and vector.size != expected:
        raise ValueError(
            f"A {model_layer!r} CAV has {expected} values; this one has "
            f"{vector.size}. {received('vector', vector)}"
        )


def read_cav_file(path: str) -> dict:
    """The msgpack map of a `.cav` file; errors name the path."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except OSError as error:
        reason = error.strerror or str(error)
        raise type(error)(
            error.errno,
            f"Could not read the .cav file {path!r}: {reason}. "
            f"{received('path', path)}",
        ) from error
    try:
        data = msgpack.unpackb(raw)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise ValueError(
            f"{path!r} is not a valid .cav file (a msgpack map): {error}. "
            f"{received('path', path)}"
        ) from error
    if not isinstance(data, dict):
        raise TypeError(
            f"{path!r} is not a .cav file: it holds a {type(data).__name__}, "
            f"not a map. {received('path', path)}"
        )
    return data


def write_cav_file(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write `data` as msgpack (floats as float32) to `path`, atomically: a
    temporary file in the same directory, flushed and renamed over `path`.

    Errors name `path`, never the temporary file. Temporary files of `path`
    left by a save that was killed (older than `STALE_SECONDS`) are removed.
    """
    shown = os.fspath(path)
    target = os.path.realpath(shown)
    directory, name = os.path.split(target)
    _remove_stale(directory, name)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _named(error, shown) from error
    try:
        with os.fdopen(fd, "wb") as stream:
            msgpack.pack(data, stream, use_single_float=True)
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _named(error, shown) from error
        if isinstance(error, (TypeError, ValueError)):
            raise type(error)(
                f"Could not save the CAV to {shown!r}: {error} (metadata and "
                f"extra values must be msgpack types). {received('path', shown)}"
            ) from error
        raise
    _fsync_directory(directory)


#: A temporary file of a save older than this (seconds) was left by a killed save.
STALE_SECONDS = 60.0


def _remove_stale(directory: str, name: str) -> None:
    """Remove `.{name}.<12 hex>.tmp` files older than `STALE_SECONDS`."""
    prefix = f".{name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            middle = entry.name[len(prefix) : -len(".tmp")]
            if not (
                entry.name.startswith(prefix)
                and entry.name.endswith(".tmp")
                and len(middle) == 12
                and all(c in "0123456789abcdef" for c in middle)
            ):
                continue
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)


def _named(error: OSError, path: str) -> OSError:
    """`error` (same class and errno) with a message naming the user's `path`."""
    reason = error.strerror or str(error)
    return type(error)(
        error.errno,
        f"Could not save the CAV to {path!r}: {reason}. {received('path', path)}",
    )


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories can't be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
