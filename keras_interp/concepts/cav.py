"""Concept activation vectors with CAVlib's API and its `.cav` file format.

A `CAV` is a unit direction in the activation space of one layer of one model;
an image's CAV score is the cosine similarity between that direction and the
image's flattened activation. The model and layer are named by `model_layer`:
one of CAVlib's strings (`"googlenet_4d"`, `"googlenet_5b"`, `"mobilenet_12d"`)
or a `(model, layer_ref)` pair for any model (`KerasModel`, a frozen-graph
`Model`, or a raw Keras model, wrapped as `KerasModel(model)` with inputs in
[0, 1]).

The `.cav` file format (CAVlib's, byte for byte) is read and written by
`keras_interp.concepts.cav_file`.
"""

from __future__ import annotations

import copy
import os
import types
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_interp._validation import check_positive_int, received
from keras_interp.concepts._batching import layer_activations
from keras_interp.concepts.activations import (
    ModelLayer,
    cavlib_layer_name,
    cavlib_layers,
    check_model_layer,
    compute_activations,
    file_layer,
    resolve,
)
from keras_interp.concepts.cav_file import (
    MODEL_KEY,
    cav_to_dict,
    check_cavlib_size,
    parse_cav_dict,
    read_cav_file,
    write_cav_file,
)


class CAV:
    """A concept activation vector: a direction at one layer of one model.

    CAVs are made by `train_cav`, read by `CAV.load` or built from a vector.
    They never change: attributes are read-only and the vector is a read-only
    float64 array (CAVlib keeps float64 in memory; files hold float32). A CAV
    on your own model is saved with its layer path and a description of the
    model, not its weights: load it with `CAV.load(path, model=your_model)`.

    Args:
        id: a `uuid.UUID` or its string form.
        vector: the direction, a 1-D array of real numbers (normally unit norm).
        model_layer: one of CAVlib's strings, or a `(model, layer_ref)` pair,
            which is resolved at once to `(Model instance, layer path)`.
        metadata: a map of msgpack-serialisable values, stored in the file.

    Raises:
        ValueError: an invalid id, an empty or non-finite vector, or an
            unknown layer.
        TypeError: a vector that is not numeric, metadata that is not a map,
            or a `model_layer` of another type.

    Example:
        >>> net = keras.Sequential([keras.Input((2, 2, 3)),
        ...                         keras.layers.Conv2D(1, 1, name="conv")])
        >>> cav = CAV(uuid.uuid4(), np.ones(4) / 2, (net, "conv"))  # 2*2*1 values
        >>> cav.score(np.array([1.0, 1.0, 0.0, 0.0]))
        0.7071067811865475

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279. Google Research, CAVlib (mood-board-search), 2022.
    """

    def __init__(
        self,
        id: uuid.UUID | str,  # noqa: A002 (CAVlib's name)
        vector: Any,
        model_layer: ModelLayer,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._id = _check_id(id)
        self._vector = _check_vector(vector)
        self._model_layer = check_model_layer(model_layer)
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            raise TypeError(
                f"`metadata` must be a map. {received('metadata', metadata)}"
            )
        self._metadata = types.MappingProxyType(copy.deepcopy(dict(metadata)))
        self._extra: dict[str, Any] = {}
        self._last_bound: tuple[Any, CAV] | None = None  # (model, bound CAV)

    # -- attributes -------------------------------------------------------------
    id = property(lambda self: self._id, doc="The CAV's `uuid.UUID`.")
    vector = property(lambda self: self._vector, doc="Read-only float64 `(D,)`.")
    model_layer = property(
        lambda self: self._model_layer,
        doc="A CAVlib string, `(Model, layer path)`, or a user layer's path "
        "when the model was not given back on loading.",
    )
    metadata = property(lambda self: self._metadata, doc="Read-only metadata map.")
    extra = property(
        lambda self: types.MappingProxyType(self._extra),
        doc="Keys read from a file beyond CAVlib's four (e.g. CAVstudio's `stats`), "
        "written back by `save`.",
    )

    @property
    def layer_name(self) -> str:
        """The string stored as `model_layer` in the file."""
        if isinstance(self._model_layer, tuple):
            return file_layer(*self._model_layer)
        return self._model_layer

    @property
    def model(self) -> Any:
        """The `Model` of a `(model, layer)` CAV, or `None` for a string."""
        return self._model_layer[0] if isinstance(self._model_layer, tuple) else None

    def __repr__(self) -> str:
        layer = self._model_layer
        if isinstance(layer, tuple):
            name = layer[1] if isinstance(layer[1], str) else layer[1].name
            layer = f"({type(layer[0]).__name__}, {name!r})"
        else:
            layer = repr(layer)
        return (
            f"CAV(id='{self._id}', model_layer={layer}, "
            f"size={self._vector.size}, metadata={dict(self._metadata)!r})"
        )

    # -- scoring --------------------------------------------------------------
    def score(self, image_or_activation: Any, *, model: Any = None) -> float:
        """The CAV score of an image: cosine similarity with its activation.

        `cos(v, a) = v . a / (|v| |a|)` in [-1, 1], with no bias (CAVlib).

        Args:
            image_or_activation: any `CAVableImage`, or a precomputed activation
                (a 1-D numpy array, e.g. from `compute_activations`).
            model: the model of a CAV on a user model that was loaded without
                it (a `Model` or a raw Keras model); `None` otherwise.

        Returns:
            A float in [-1, 1] (0.0 for an all-zero activation, where CAVlib
            returned NaN).

        Raises:
            ValueError: the activation's length differs from the vector's, or
                the CAV names a user model's layer and no model is known.
        """
        x = image_or_activation
        if isinstance(x, np.ndarray) and x.ndim == 1:
            activation = x
        else:
            activation = compute_activations(x, self._scoring_layer(model))
        return _cosine(self._vector, activation, self, "image_or_activation")

    def scores(
        self,
        images: Sequence[Any],
        *,
        model: Any = None,
        batch_size: int = 32,
        verbose: str | int = "auto",
    ) -> np.ndarray:
        """`score` of many images, with activations computed in batches.

        Args:
            images: images or precomputed 1-D activations, mixed freely.
            model: as in `score`.
            batch_size: images per forward pass.
            verbose: `"auto"` shows a progress bar for 5 batches or more; 0, 1 or 2.

        Returns:
            float64 `(N,)`.
        """
        images = list(images)
        out = np.zeros(len(images))
        todo = [
            i
            for i, x in enumerate(images)
            if not (isinstance(x, np.ndarray) and x.ndim == 1)
        ]
        activations = dict.fromkeys(range(len(images)))
        if todo:
            net, layer = resolve(self._scoring_layer(model))
            rows = layer_activations(
                net,
                [images[i] for i in todo],
                net.check_layer(layer),
                batch_size=check_positive_int(batch_size, "batch_size"),
                verbose=verbose,
            )
            activations.update(zip(todo, rows))
        for i, x in enumerate(images):
            row = x if activations[i] is None else activations[i]
            out[i] = _cosine(self._vector, row, self, f"images[{i}]")
        return out

    def sort(
        self, images: Sequence[Any], reverse: bool = False, *, model: Any = None
    ) -> list:
        """`images` sorted by CAV score, lowest first (highest with `reverse`).

        Equal scores keep their order (Python's stable `sorted`, as CAVlib).
        """
        images = list(images)
        scores = self.scores(images, model=model)
        order = sorted(range(len(images)), key=scores.__getitem__, reverse=reverse)
        return [images[i] for i in order]

    def _scoring_layer(self, model: Any) -> ModelLayer:
        if model is not None:
            return self._bound(model)._model_layer
        if isinstance(self._model_layer, str) and self._model_layer not in (
            cavlib_layers()
        ):
            described = self._extra.get(MODEL_KEY, "no description")
            raise ValueError(
                f"This CAV was trained on layer {self._model_layer!r} of a user "
                f"model ({described}); pass the model: `cav.score(image, "
                "model=...)` or `CAV.load(path, model=...)`. "
                f"{received('model', model)}"
            )
        return self._model_layer

    def _bound(self, model: Any) -> CAV:
        """This CAV with its layer string resolved against `model`."""
        last = self._last_bound
        if last is not None and last[0] is model:
            return last[1]
        layer = self.layer_name
        if layer in cavlib_layers():
            layer = cavlib_layer_name(layer)
        recorded = self._extra.get(MODEL_KEY)
        net = model
        if not hasattr(model, "get_activation_for_image"):
            from keras_interp.models import KerasModel

            value_range = (0, 1)
            if isinstance(recorded, Mapping) and "input_value_range" in recorded:
                value_range = tuple(recorded["input_value_range"])
            net = KerasModel(model, input_value_range=value_range)
        cav = CAV(self._id, self._vector, (net, layer), self._metadata)
        cav._extra = {k: v for k, v in self._extra.items() if k != MODEL_KEY}
        self._last_bound = (model, cav)
        return cav

    # -- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """CAVlib's dict: `vector` (list), `id` (str), `model_layer` (str),
        `metadata`, then the extra keys (and `"model"` for a user model)."""
        return cav_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, model: Any = None) -> CAV:
        """The inverse of `to_dict`; unknown keys are kept and written back.

        Args:
            data: a map with `vector`, `id`, `model_layer` and optionally
                `metadata` and other keys.
            model: the model to bind a user-model CAV to (see `CAV.load`).

        Raises:
            TypeError: `data` is not a map, or a value has the wrong type.
            ValueError: a missing key, or a vector of the wrong shape (a
                CAVlib layer string fixes the vector's length).
        """
        fields, extra = parse_cav_dict(data)
        cav = cls(**fields)
        check_cavlib_size(fields["model_layer"], cav.vector)
        cav._extra = extra
        return cav if model is None else cav._bound(model)

    def get_config(self) -> dict[str, Any]:
        """`to_dict()`: a JSON- and msgpack-serialisable config."""
        return self.to_dict()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, model: Any = None) -> CAV:
        """`from_dict(config, model=model)`."""
        return cls.from_dict(config, model=model)

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: Any = None) -> CAV:
        """Read a `.cav` file written by CAVlib, CAVstudio or `save`.

        Args:
            path: the file.
            model: for a CAV on a user model, the model to score with (a
                `Model`, or a raw Keras model wrapped in `KerasModel` with the
                recorded `input_value_range`); for a CAVlib layer string, an
                optional replacement model (e.g. `GooglenetModel(model_path=..)`)
                used at CAVlib's layer.

        Returns:
            The CAV; `extra` holds the file's other keys.

        Raises:
            ValueError: a truncated, corrupt or non-msgpack file, missing keys
                or a vector of the wrong shape; the message names the path.
            TypeError: the file holds something other than a map, or a value of
                the wrong type; the message names the path.
            FileNotFoundError: no such file.
        """
        path = os.fspath(path)
        data = read_cav_file(path)
        try:
            return cls.from_dict(data, model=model)
        except (ValueError, TypeError) as error:
            raise type(error)(f"Invalid .cav file {path!r}: {error}") from error

    def save(self, path: str | os.PathLike) -> None:
        """Write CAVlib's `.cav` file, atomically.

        The file is written to a temporary file in the same directory, flushed
        to disk and renamed over `path`: a failure at any point leaves the
        previous file (if any) intact and no temporary file behind. Vector
        values are stored as float32, as CAVlib does.

        Args:
            path: the file to create or replace (a symlink is followed).

        Temporary files of `path` left behind by a save that was killed
        (hidden `.<name>.<hex>.tmp` files older than a minute) are removed.

        Raises:
            TypeError: metadata or extra values that msgpack cannot store; the
                message names `path`.
            OSError: the directory does not exist or is not writable (the same
                `OSError` subclass and errno, with a message naming `path`,
                never the temporary file).
        """
        write_cav_file(path, self.to_dict())


def _check_id(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise TypeError(f"`id` must be a UUID or a string. {received('id', value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(
            f"`id` must be a UUID string. {received('id', value)}"
        ) from None


def _check_vector(value: Any) -> np.ndarray:
    try:
        array = np.array(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(
            f"`vector` must be a 1-D array: {error}. {received('vector', value)}"
        ) from None
    if array.dtype.kind not in "fiu":
        raise TypeError(
            f"`vector` must hold real numbers, got dtype {array.dtype}. "
            f"{received('vector', value)}"
        )
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"`vector` must be a non-empty 1-D array, got shape {array.shape}. "
            f"{received('vector', array)}"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"`vector` must be finite. {received('vector', array)}")
    array.flags.writeable = False
    return array


def _cosine(vector: np.ndarray, activation: Any, cav: CAV, arg: str) -> float:
    activation = np.asarray(activation, np.float64).reshape(-1)
    if activation.size != vector.size:
        raise ValueError(
            f"`{arg}` gives an activation of {activation.size} values but the CAV "
            f"has {vector.size} (model_layer={cav.layer_name!r}). "
            f"{received(arg, activation)}"
        )
    norm = np.linalg.norm(vector) * np.linalg.norm(activation)
    return float(np.dot(vector, activation) / norm) if norm > 0 else 0.0
