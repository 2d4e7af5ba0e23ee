"""glimpse's dataflow on Keras models: `LayerGraph`, `build_layer`, patches.

`LayerGraph.from_model` gives every layer of a model a `LayerSpec` (id = the
layer path `"outer/inner"`, dependencies = its inbound layers) and `build_layer`
fills a `State` with layer outputs, all missing layers in one forward pass,
through a sub-model cached per model by weak reference. `sample_patches` draws
random spatial patches from a layer's activations. The generic core (`Node`,
`LayerSpec`, `State`, `DataFlow`, `build_node`) is in `dataflow`.

References:
    Thomure, The Glimpse Project (`glimpse.util.dataflow`,
    `glimpse.models.base`), 2011-2014.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_positive_int, closest, received
from keras_interp.inspection import graph
from keras_interp.inspection.dataflow import SOURCE, LayerSpec, State, _key
from keras_interp.inspection.expose import expose

__all__ = [
    "SOURCE",
    "InputSizeError",
    "LayerGraph",
    "build_layer",
    "sample_patches",
    "sample_patches_from_data",
]


class LayerGraph:
    """The layers of a model as `LayerSpec`s, in topological order.

    Example:
        >>> inputs = keras.Input((4,), name="x")
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
        >>> LayerGraph.from_model(model).from_name("DENSE")
        LayerSpec(id_='dense', name='dense', depends=['x'])
    """

    def __init__(self, layers: Iterable[LayerSpec]) -> None:
        self._layers = list(layers)
        self._by_id = {layer.id_: layer for layer in self._layers}

    @classmethod
    def from_model(cls, model: Any) -> LayerGraph:
        """Specs for every layer of `model`, nested ones as `"outer/inner"`.

        Ids are layer paths, names the last path component, dependencies the
        inbound layers (`graph.layer_dependencies`); the model inputs have none.
        """
        pairs = graph.layer_dependencies(model)
        specs = {path: LayerSpec(path, path.rsplit("/", 1)[-1]) for path, _ in pairs}
        for path, inbound in pairs:
            specs[path].depends = tuple(specs[p] for p in inbound)
        return cls(specs.values())

    @property
    def inputs(self) -> list[LayerSpec]:
        """The layers without dependencies (the model inputs), in order."""
        return [layer for layer in self._layers if not layer.depends]

    def all_layers(self) -> list[LayerSpec]:
        """Every layer, in topological order."""
        return list(self._layers)

    def from_id(self, id_: Any) -> LayerSpec:
        """The layer of id `id_` (a spec of this graph passes through)."""
        if _key(id_) in self._by_id:
            return self._by_id[_key(id_)]
        hints = ", ".join(closest(str(_key(id_)), map(str, self._by_id)))
        raise ValueError(
            f"An unknown model layer was requested. Closest layer ids: {hints}. "
            f"{received('id_', _key(id_))}"
        )

    def from_name(self, name: str | LayerSpec) -> LayerSpec:
        """The layer named `name` (case-insensitive; a full path also works)."""
        if isinstance(name, LayerSpec):
            return self.from_id(name)
        lowered = str(name).lower()
        found = [s for s in self._layers if s.name.lower() == lowered]
        found = found or [s for s in self._layers if str(s.id_).lower() == lowered]
        if len(found) > 1:
            raise ValueError(
                f"Layer name {name!r} is ambiguous; use one of the ids "
                f"{[s.id_ for s in found]}. {received('name', name)}"
            )
        if not found:
            hints = ", ".join(closest(str(name), [s.name for s in self._layers]))
            raise ValueError(
                f"An unknown model layer was requested. Closest layer names: "
                f"{hints}. {received('name', name)}"
            )
        return found[0]

    def resolve(self, ref: Any) -> LayerSpec:
        """A spec from a spec, an id, or (failing that) a name."""
        if isinstance(ref, LayerSpec) or _key(ref) in self._by_id:
            return self.from_id(ref)
        return self.from_name(ref)

    def is_sublayer(self, sub: Any, super_: Any) -> bool:
        """Whether `sub` is reached from `super_` through dependencies."""
        sub, seen = self.resolve(sub), set()
        todo = list(self.resolve(super_).depends or ())
        while todo:
            layer = todo.pop()
            if layer == sub:
                return True
            if layer not in seen:
                seen.add(layer)
                todo.extend(layer.depends or ())
        return False

    def top_layer(self) -> LayerSpec:
        """The first layer (topological order) on which no other layer depends."""
        used = {dep for layer in self._layers for dep in layer.depends or ()}
        for layer in self._layers:
            if layer not in used:
                return layer
        raise ValueError("The layer graph has no top layer (it is empty).")


class _ModelEntry:
    """What `build_layer` keeps per model: its graph and exposed sub-models."""

    def __init__(self, model: Any, signature: tuple) -> None:
        self.signature = signature
        self.graph = LayerGraph.from_model(model)
        self.exposable = {path for path, _ in graph.iter_layers(model)}
        self.submodels: dict[tuple[str, ...], Any] = {}


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _entry(model: Any) -> _ModelEntry:
    signature = tuple(id(layer) for _, layer in graph.iter_layers(model))
    entry = _CACHE.get(model)
    if entry is None or entry.signature != signature:
        entry = _CACHE[model] = _ModelEntry(model, signature)
    return entry


def _weak(model: Any) -> Any:
    """`model` as the cached sub-models should hold it: weakly.

    An exposed model keeps a reference to its source model, and a cache value
    that refers to its own weak key keeps it alive forever; a proxy breaks the
    cycle.
    """
    return weakref.proxy(model)


def _computed_as(entry: _ModelEntry, spec: LayerSpec) -> LayerSpec:
    """The layer whose output is `spec`'s (a nested input is its feeder's)."""
    while spec.id_ not in entry.exposable and len(spec.depends or ()) == 1:
        spec = spec.depends[0]
    return spec


def _as_state(state: Any, layers: LayerGraph) -> State:
    if isinstance(state, State):
        return state
    if isinstance(state, Mapping):
        return State(state)
    if isinstance(state, np.ndarray) or tf.is_tensor(state):
        if len(layers.inputs) != 1:
            raise ValueError(
                f"The model has {len(layers.inputs)} inputs; pass a State keyed by "
                f"{[s.id_ for s in layers.inputs]}. {received('state', state)}"
            )
        return State({layers.inputs[0]: state})
    raise TypeError(
        "`state` must be a State, a mapping or an input array. "
        f"{received('state', state)}"
    )


def build_layer(model: Any, layer: Any, state: Any, save_all: bool = True) -> State:
    """Compute layer outputs of `model` into a state, in one forward pass.

    The requested layers missing from `state` are computed together by one
    call of `expose(model, arguments=[...], outputs=[])`; that sub-model is
    cached per model (by weak reference: the cache never keeps a Keras 3 model
    alive) and layer set. Layers already in the
    state are not recomputed, so pass the returned state to later calls. The
    computation always starts from the model input(s): intermediate values in
    the state are not used as starting points.

    Args:
        model: a functional or Sequential Keras model.
        layer: a `LayerSpec`, a layer id (path) or name, or a tuple/list of them.
        state: a `State` (or mapping) holding the input batch under the input
            layer's spec or id, or the input batch itself (single-input models).
        save_all: keep everything in `state` plus the new layers; if False,
            return only the requested layers (and `SOURCE`, if present).

    Returns:
        A new `State` (the type of `state`) with numpy arrays `(B, ...)`.

    Raises:
        ValueError: an unknown layer, or the input is missing ("Input state is
            missing source information").

    Example:
        >>> inputs = keras.Input((4,), name="x")
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
        >>> state = build_layer(model, "dense", np.ones((3, 4), np.float32))
        >>> sorted(state), state["dense"].shape
        (['dense', 'x'], (3, 2))
    """
    entry = _entry(model)
    refs = layer if isinstance(layer, (tuple, list)) else (layer,)
    requested = [entry.graph.resolve(ref) for ref in refs]
    state = _as_state(state, entry.graph)
    out = state.copy()
    missing = [spec for spec in dict.fromkeys(requested) if spec not in out]
    if missing:
        absent = [spec.id_ for spec in entry.graph.inputs if spec not in out]
        if absent:
            raise ValueError(
                "Input state is missing source information: it holds no value "
                f"for the model input(s) {absent}. {received('state', state)}"
            )
        sources = [_computed_as(entry, spec) for spec in missing]
        for spec, source in zip(missing, sources):
            if source.id_ not in entry.exposable and source not in out:
                raise ValueError(
                    f"Layer {spec.id_!r} cannot be computed on its own (an input of "
                    f"a nested model fed by several layers). {received('layer', layer)}"
                )
        targets = tuple(dict.fromkeys(s.id_ for s in sources if s not in out))
        if targets:
            if targets not in entry.submodels:
                entry.submodels[targets] = expose(_weak(model), list(targets), [])
            inputs = [out[spec] for spec in entry.graph.inputs]
            values = entry.submodels[targets](inputs[0] if len(inputs) == 1 else inputs)
            values = values if isinstance(values, (list, tuple)) else [values]
            for target, value in zip(targets, values):
                out[target] = np.asarray(value)
        for spec, source in zip(missing, sources):
            out[spec] = out[source]
    if save_all:
        return out
    kept = type(state)({spec: out[spec] for spec in requested})
    if SOURCE in out:
        kept[SOURCE] = out[SOURCE]
    return kept


class InputSizeError(ValueError):
    """A layer is spatially smaller than the requested patches.

    Attributes:
        scale: the index of the first map that is too small.
        source: the state's `SOURCE` value (set by `sample_patches`).
        layer: the `LayerSpec` sampled (set by `sample_patches`).
    """

    def __init__(
        self,
        message: str,
        *,
        scale: int | None = None,
        source: Any = None,
        layer: LayerSpec | None = None,
    ) -> None:
        super().__init__(message)
        self.scale, self.source, self.layer = scale, source, layer


def sample_patches(
    model: Any,
    layer: Any,
    num_patches: int,
    patch_size: int,
    state: Any,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random spatial patches of a layer's activations (`build_layer` first).

    Each image of the batch is one "scale" of `sample_patches_from_data`.

    Args:
        model: a functional or Sequential Keras model.
        layer: a `LayerSpec`, id or name of a layer with `(B, H, W, C)` outputs.
        num_patches: how many patches (0 gives empty arrays).
        patch_size: the patch side, a positive int.
        state: as in `build_layer`.
        seed: seed of the `numpy.random.Generator`.

    Returns:
        `(patches, locs)`: float32 `(num_patches, patch_size, patch_size, C)`
        and int64 `(num_patches, 3)` rows `(batch index, y0, x0)`.

    Raises:
        InputSizeError: the layer is smaller than `patch_size`; it carries
            `scale`, `source` (the state's `SOURCE`) and `layer`.
        ValueError: an unknown layer or a missing input (see `build_layer`).

    Example:
        >>> inputs = keras.Input((8, 8, 3), name="x")
        >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="c")(inputs))
        >>> patches, locs = sample_patches(model, "c", 5, 2, np.ones((2, 8, 8, 3)))
        >>> patches.shape, locs.shape
        ((5, 2, 2, 4), (5, 3))
    """
    spec = _entry(model).graph.resolve(layer)
    state = build_layer(model, spec, state)
    try:
        return sample_patches_from_data(state[spec], patch_size, num_patches, seed)
    except InputSizeError as error:
        error.source, error.layer = state.get(SOURCE), spec
        raise


def sample_patches_from_data(
    data: Any, patch_width: int, num_patches: int, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample square patches at random locations of channels-last maps.

    `data` is a sequence of maps ("scales"): an array `(S, H, W, ...)` such as
    a batch of activations `(B, H, W, C)`, a list of arrays `(H_s, W_s, ...)`
    (sizes may differ, trailing axes must agree), or one 2-D map `(H, W)`.
    Wrap a single `(H, W, C)` map as `data[None]`. Per patch: a scale uniform
    in `[0, S - 1]`, `y0` in `[0, H_s - patch_width]` and `x0` in `[0, W_s -
    patch_width]`, bounds inclusive (glimpse's docstring said `<`; its code and
    tests are inclusive). Patches may repeat.

    Args:
        data: the maps, as above.
        patch_width: the patch side, a positive int.
        num_patches: how many patches (0 gives empty arrays).
        seed: seed of the `numpy.random.Generator`.

    Returns:
        `(patches, locs)`: float32 `(num_patches, patch_width, patch_width,
        ...)` and int64 `(num_patches, 3)` rows `(scale, y0, x0)` (top left).

    Raises:
        InputSizeError: a map smaller than `patch_width`, with its `scale`.
        ValueError: empty `data`, maps of rank < 2 or different trailing axes.

    Example:
        >>> patches, locs = sample_patches_from_data(np.ones((2, 8, 8, 3)), 4, 5)
        >>> patches.shape, locs.shape
        ((5, 4, 4, 3), (5, 3))
    """
    patch_width = check_positive_int(patch_width, "patch_width")
    num_patches = check_positive_int(num_patches, "num_patches", allow_zero=True)
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        data = np.asarray(data)
        scales = [data] if data.ndim == 2 else list(data)
    elif isinstance(data, (list, tuple)):
        scales = [np.asarray(d) for d in data]
    else:
        raise TypeError(f"`data` must be an array or a list. {received('data', data)}")
    if not scales or any(
        s.ndim < 2 or s.shape[2:] != scales[0].shape[2:] for s in scales
    ):
        raise ValueError(
            "`data` must be a non-empty sequence of maps (H, W, ...) with the same "
            f"trailing axes. {received('data', data)}"
        )
    for index, scale in enumerate(scales):
        if min(scale.shape[:2]) < patch_width:
            raise InputSizeError(
                f"Input data is smaller (scale {index}: {scale.shape[:2]}) than the "
                f"requested patch width. Received: patch_width={patch_width}",
                scale=index,
            )
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(scales), size=num_patches)
    heights = np.array([s.shape[0] for s in scales])[chosen]
    widths = np.array([s.shape[1] for s in scales])[chosen]
    y0 = rng.integers(0, heights - patch_width + 1)
    x0 = rng.integers(0, widths - patch_width + 1)
    shape = (num_patches, patch_width, patch_width, *scales[0].shape[2:])
    patches = np.empty(shape, np.float32)
    for index, (s, y, x) in enumerate(zip(chosen, y0, x0)):
        patches[index] = scales[s][y : y + patch_width, x : x + patch_width]
    locs = np.stack([chosen, y0, x0], axis=1).astype(np.int64).reshape(-1, 3)
    return patches, locs
