"""glimpse's dataflow: nodes, states, callbacks and `build_node`.

A `DataFlow` computes `Node` values from the values of the nodes they depend on
and stores them in a `State` (a mapping keyed by node or node id). A
`LayerSpec` is a node for a model layer; `layer_flow` builds them for a Keras
model (`LayerGraph`) and computes their outputs (`build_layer`).

References:
    Thomure, The Glimpse Project (`glimpse.util.dataflow`,
    `glimpse.models.base`), 2011-2014.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import received


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
