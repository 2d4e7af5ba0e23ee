"""`traced_function`: `tf.function` without AutoGraph, with AutoGraph as fallback.

AutoGraph rewrites every Python function a traced function calls (the
method, its helpers, the layer-by-layer executor of `inspection.graph`)
before running it, and its conversion costs more than the trace itself:
tracing plain occlusion on MobileNetV2 (112 px) takes 6.3 s with AutoGraph
and 1.1 s without (`benchmarks/bench_perf.py --only first` measures the
first calls). The library's own code needs no conversion: its loops and
conditions on tensors are `tf.while_loop`, `tf.cond` and `tf.where`, and its
Python `if`/`for` run on static shapes only.

A model or a user's method may still branch on a tensor in Python (`if
tf.reduce_sum(x) > 0:` in a subclassed model's `call`). Without AutoGraph that
fails at trace time with `OperatorNotAllowedInGraphError` (it never gives
another answer), so the function is traced again with AutoGraph, once, and
keeps that version (logged at INFO).

Each traced function is its own key for TensorFlow's "frequent retracing"
warning: the engine builds one function per (model, method, options) from the
same Python code, and that warning, keyed by the code, would otherwise fire
when a user simply explains with five methods in a row.

Reference: Moldovan et al., "AutoGraph: Imperative-style Coding with
Graph-based Performance", SysML 2019.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import tensorflow as tf

LOG = logging.getLogger(__name__)

__all__ = ["traced_function"]


class TracedFunction:
    """A `tf.function` traced without AutoGraph until Python control flow on a
    tensor needs it; then with AutoGraph from that call on.

    Attributes of the underlying `tf.function` (`get_concrete_function`,
    `experimental_get_tracing_count`, ...) are those of the version in use;
    `autograph` says which one that is.
    """

    def __init__(self, python_function: Callable, options: dict[str, Any]):
        # A partial has no `__code__`: TensorFlow then counts retraces per
        # object (see the module docstring); the name is kept for the graph.
        own = functools.partial(python_function)
        own.__name__ = getattr(python_function, "__name__", "function")
        self._python_function = own
        self._options = options
        self.autograph = False
        self.function = tf.function(own, autograph=False, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.attempt(lambda function: function(*args, **kwargs))

    def get_concrete_function(self, *args: Any, **kwargs: Any) -> Any:
        return self.attempt(
            lambda function: function.get_concrete_function(*args, **kwargs)
        )

    def attempt(self, use: Callable[[Any], Any]) -> Any:
        """`use(tf_function)` with the version in use; when that fails with
        `OperatorNotAllowedInGraphError` without AutoGraph, once more with it
        (e.g. `strategy.run`, which needs the `tf.function` itself)."""
        try:
            return use(self.function)
        except tf.errors.OperatorNotAllowedInGraphError:
            if self.autograph:
                raise  # a real error: AutoGraph does not convert that code
        name = getattr(self._python_function, "__name__", "function")
        LOG.info(
            "%s branches on a tensor in Python: traced again with AutoGraph.", name
        )
        self.autograph = True
        self.function = tf.function(
            self._python_function, autograph=True, **self._options
        )
        return use(self.function)

    def __getattr__(self, name: str) -> Any:
        if name in ("function", "_python_function", "_options", "autograph"):
            raise AttributeError(name)  # not yet set (during unpickling, say)
        return getattr(self.function, name)


def traced_function(python_function: Callable, **options: Any) -> TracedFunction:
    """`tf.function(python_function, **options)`, traced without AutoGraph
    first (several times faster to trace), with AutoGraph when the code needs it.

    Args:
        python_function: what to trace.
        **options: `tf.function` options (`reduce_retracing`, `jit_compile`,
            `input_signature`), except `autograph`.

    Returns:
        A callable with the `tf.function`'s methods (`TracedFunction`).

    Example:
        >>> import tensorflow as tf
        >>> double = traced_function(lambda x: 2.0 * x)
        >>> float(double(tf.constant(3.0))), double.autograph
        (6.0, False)
        >>> def relu_or_zero(x):
        ...     if tf.reduce_sum(x) > 0:  # Python control flow on a tensor
        ...         return tf.nn.relu(x)
        ...     return tf.zeros_like(x)
        >>> branching = traced_function(relu_or_zero)
        >>> branching(tf.constant([-1.0, 2.0])).numpy().tolist(), branching.autograph
        ([0.0, 2.0], True)
    """
    if "autograph" in options:
        raise TypeError(
            "`autograph` is chosen by traced_function (off, then on when needed); "
            f"got autograph={options['autograph']!r}."
        )
    return TracedFunction(python_function, options)
