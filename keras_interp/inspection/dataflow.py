"""glimpse's dataflow, for Keras models: layer specs, states, `build_layer`, patches.

A `DataFlow` computes `Node` values from the values of the nodes they depend on
and stores them in a `State` (a mapping keyed by node or node id). For a Keras
model, `LayerGraph.from_model` gives every layer a `LayerSpec` (id = the layer
path `"outer/inner"`, dependencies = its inbound layers) and `build_layer` fills
a `State` with layer outputs, all missing layers in one forward pass.
`sample_patches` draws random spatial patches from a layer's activations.

References:
    Thomure, The Glimpse Project (`glimpse.util.dataflow`,
    `glimpse.models.base`), 2011-2014.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_positive_int, closest, received
from keras_interp.inspection import graph
from keras_interp.inspection.expose import expose


class Node:
    """A value of a dataflow, equal to (and hashed as) any node of the same `id_`.

    Args:
        id_: the node's identifier, unique within its flow.
        depends: `None` or a sequence of the `Node`s this node is computed from.

    Raises:
        ValueError: `depends` is not None or a list/tuple.
        TypeError: `depends` holds something other than nodes.

    Example:
        >>> Node("b", depends=[Node("a")]) == Node("b")
        True
    """

    def __init__(self, id_: Any, depends: Iterable[Node] | None = None) -> None:
        if depends is not None and not isinstance(depends, (list, tuple)):
            raise ValueError(
                f"`depends` must be None or a sequence of nodes. "
                f"{received('depends', depends)}"
            )
        if depends is not None and not all(isinstance(d, Node) for d in depends):
            raise TypeError(
                f"`depends` must hold nodes. {received('depends', depends)}"
            )
        self.id_ = id_
        self.depends = None if depends is None else tuple(depends)

    def __eq__(self, other: object) -> bool:
        return other.id_ == self.id_ if isinstance(other, Node) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.id_)

    def __repr__(self) -> str:
        deps = None if self.depends is None else [d.id_ for d in self.depends]
        return f"Node(id_={self.id_!r}, depends={deps!r})"


class LayerSpec(Node):
    """A model layer: a `Node` with a human-readable `name`.

    The repr lists dependencies by id (glimpse printed them in full, which is
    exponential in the depth of a residual network).
    """

    def __init__(self, id_: Any, name: str, depends: Iterable[Node] | None = None):
        super().__init__(id_, depends)
        self.name = name

    def __repr__(self) -> str:
        deps = None if self.depends is None else [d.id_ for d in self.depends]
        return f"LayerSpec(id_={self.id_!r}, name={self.name!r}, depends={deps!r})"


#: Where the input came from (e.g. an image path). Optional; `build_layer` keeps
#: it when `save_all=False` and errors report it as `source`.
SOURCE = LayerSpec("__source__", "source")


def _key(name: Any) -> Any:
    return name.id_ if isinstance(name, Node) else name


def _brief(value: Any) -> str:
    if isinstance(value, np.ndarray) or tf.is_tensor(value):
        return f"<{type(value).__name__} shape={tuple(value.shape)}>"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    if any(isinstance(v, np.ndarray) or tf.is_tensor(v) for v in (a, b)):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a is b or bool(a == b)


class State:
    """A dataflow's values, keyed by `Node` or node id (always stored by id).

    A mapping (`[]`, `del`, `in`, `iter`, `len`, `keys`, `items`, `values`,
    `get`, `update`, `copy`, `clear`). Two states are equal when they have the
    same type and the same items (arrays compared by value). `copy()` and
    `copy.copy()` make a new mapping (the values are shared): glimpse's
    `copy.copy` shared the inner dict, so building a node mutated the caller's
    state too.

    Example:
        >>> state = State({Node("x"): 1}, y=2)
        >>> state["x"], state[Node("y")]
        (1, 2)
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, elements: Any = None, **kw: Any) -> None:
        self._data = dict(kw)
        items = elements.items() if hasattr(elements, "items") else elements or ()
        for name, value in items:
            if _key(name) not in kw:
                self[name] = value

    def __getitem__(self, name: Any) -> Any:
        return self._data[_key(name)]

    def __setitem__(self, name: Any, value: Any) -> None:
        self._data[_key(name)] = value

    def __delitem__(self, name: Any) -> None:
        del self._data[_key(name)]

    def __contains__(self, name: Any) -> bool:
        return _key(name) in self._data

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other) or self.keys() != other.keys():
            return False
        return all(_same(v, other._data[k]) for k, v in self._data.items())

    def __repr__(self) -> str:
        shown = ", ".join(f"{k!r}: {_brief(v)}" for k, v in self._data.items())
        return f"{type(self).__name__}({{{shown}}})"

    def __str__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(str, self._data))})"

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def values(self):
        return self._data.values()

    def get(self, name: Any, default: Any = None) -> Any:
        return self._data.get(_key(name), default)

    def update(self, elements: Any = (), **kw: Any) -> None:
        items = elements.items() if hasattr(elements, "items") else elements
        for name, value in [*items, *kw.items()]:
            self[name] = value

    def clear(self) -> None:
        self._data.clear()

    def copy(self) -> State:
        """A new state of the same type with the same items."""
        return type(self)(self._data)

    __copy__ = copy


class DependencyError(ValueError):
    """A requested node, or one it depends on, has no value and no callback."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.node = node

    def __str__(self) -> str:
        return f"Node ({self.node!r}) could not be computed due to unmet dependencies"


def node_builder(node: Node) -> Callable[[Callable], Callable]:
    """Decorate a `DataFlow` method as the callback that computes `node`.

    The method takes one argument per dependency of `node` (after `self`); the
    subclass's `__init__` registers it. `layer_builder` is the same decorator.

    Raises:
        ValueError: used without its argument (`@node_builder` alone).
        TypeError: `node` is not a `Node`.
    """
    if callable(node) and not isinstance(node, Node):
        raise ValueError("@node_builder decorator takes an argument (the node).")
    if not isinstance(node, Node):
        raise TypeError(f"`node` must be a Node. {received('node', node)}")

    def decorate(fn: Callable) -> Callable:
        fn._flow_node = node
        return fn

    return decorate


layer_builder = node_builder


class DataFlow:
    """Callbacks that compute nodes from their dependencies (see `build_node`).

    Subclasses mark methods with `@node_builder(node)`; they are registered on
    construction. Flows pickle when their callbacks do (methods and module-level
    functions, not lambdas).
    """

    def __init__(self) -> None:
        self._callbacks: dict[Node, Callable] = {}
        for name in dir(type(self)):
            node = getattr(getattr(type(self), name, None), "_flow_node", None)
            if isinstance(node, Node):
                self.register(node, getattr(self, name))

    def register(self, node: Node, fn: Callable | None) -> None:
        """Set (or with `fn=None` remove) the callback computing `node`.

        Raises:
            ValueError: `fn` cannot take exactly one positional argument per
                dependency of `node`.
        """
        if fn is None:
            self._callbacks.pop(node, None)
            return
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. {received('fn', fn)}")
        arity = len(node.depends or ())
        try:
            inspect.signature(fn).bind(*range(arity))
        except TypeError as error:
            raise ValueError(
                f"The callback for {node!r} must take {arity} positional "
                f"argument(s), one per dependency ({error}). {received('fn', fn)}"
            ) from None
        self._callbacks[node] = fn

    def _dispatch(self, node: Node, args: list[Any]) -> Any:
        if node not in self._callbacks:
            raise DependencyError(node)
        return self._callbacks[node](*args)


def build_node(flow: DataFlow, nodes: Node | Iterable[Node], state: State) -> State:
    """Compute `nodes` (one or a tuple/list) and what they need, into a new state.

    Values already in `state` are used as they are (a supplied node skips its
    dependencies); the others are computed depth first, dependencies in order.

    Args:
        flow: the `DataFlow` holding the callbacks.
        nodes: a `Node`, or a tuple or list of them.
        state: the known values.

    Returns:
        A copy of `state` (same type) holding every computed node; `state`
        itself is not modified.

    Raises:
        DependencyError: a needed node has neither a value nor a callback.
        ValueError: the dependencies form a cycle.

    Example:
        >>> a, b = Node("a"), Node("b", [Node("a")])
        >>> flow = DataFlow()
        >>> flow.register(b, abs)
        >>> build_node(flow, b, State(a=-2))["b"]
        2
    """
    out = state.copy()
    for node in nodes if isinstance(nodes, (list, tuple)) else (nodes,):
        stack, active = [(node, False)], set()
        while stack:
            current, expanded = stack.pop()
            if current in out:
                continue
            if expanded:
                args = [out[dep] for dep in current.depends or ()]
                out[current] = flow._dispatch(current, args)
                continue
            if current in active:
                raise ValueError(f"The dependencies of {current!r} form a cycle.")
            active.add(current)
            if current not in flow._callbacks:
                raise DependencyError(current)
            stack.append((current, True))
            stack.extend((dep, False) for dep in reversed(current.depends or ()))
    return out


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
