"""The compiled explaining step, cached per model by weak reference.

`explain()` runs one `tf.function` per (model, method, options, spatial axes,
post-processing, resizing, `jit_compile`, strategy). The functions live in a
module-level cache keyed by the model's `id()` and tied to the model's life by a
weak reference: deleting the model drops its functions, and nothing is ever set
on the user's model. The traced step reaches the model through that weak
reference too, so a cached function never keeps its model alive.

Batch size and chunk size never enter a trace: the batch axis is relaxed by
`reduce_retracing`, and the chunk size of methods that take `batch_size`
(Score-CAM, occlusion, RISE, integrated gradients) travels as the static shape
of a `(batch_size, 0)` tensor argument, read with `tf.shape` in the step. That
is a run-time value for TensorFlow and a compile-time constant for XLA (which
compiles once per concrete shape), so one `tf.function` serves every batch size
in both modes.

`split_for_replicas` prepares a batch for the distributed step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_callable,
    received,
    recording_unit_widths,
)
from keras_interp.engine.cache import (  # noqa: F401 - re-exported
    _CACHE,
    MAX_FUNCTIONS_PER_MODEL,
    cached_function,
    cached_variant,
    clear_cache,
)
from keras_interp.engine.keys import canonical as _canonical
from keras_interp.engine.models import resolve_model
from keras_interp.engine.tracing import traced_function


def compiled_function(
    method: Callable,
    model: Any,
    *,
    spatial_axis: tuple[int, ...] = (-3, -2),
    postprocessing: Callable | None = None,
    resizing: bool | tuple[int, int] | None = True,
    jit_compile: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    **method_kwargs: Any,
) -> Callable:
    """The cached `tf.function` that `explain()` runs for these options.

    Called with the same arguments as `explain()` (minus the data), it returns
    the very function `explain()` used, so its trace count can be read with
    `fn.experimental_get_tracing_count()`. The function maps a batch
    `(x, indices, chunk=None)` to `(logits, maps)`: it calls `method`, applies
    `postprocessing(maps, axis=(-3, -2))` to the maps `(B, H', W', L)`,
    resizes them bilinearly to the inputs' height and width (the axes
    `spatial_axis` of `x`), and casts both outputs to float32. `x` may be a
    nest (tuple, list or dict) of tensors for a model with several inputs;
    the first leaf then gives the size maps are resized to.

    `chunk`, a tensor of shape `(batch_size, 0)`, gives a method that takes
    `batch_size` (and is not given one in `method_kwargs`) its chunk size
    without tracing it: `batch_size=tf.shape(chunk)[0]`, a scalar int32
    tensor, so the chunk a method scores at once is the engine's batch size
    (occlusion, RISE and integrated gradients take it). A method that refuses
    a tensor `batch_size` (a `TypeError`/`ValueError` whose message starts
    with `` `batch_size` `` while tracing; a user's method, say) gets the
    static size when the trace knows it, else its own default.

    While tracing, the widths of the unit axes the indices select from (see
    `keras_interp._validation.note_unit_width`) are recorded in the list
    `fn.unit_widths`, so callers can check indices against them after a call
    in every mode, XLA included. With a `strategy` it takes per-replica values
    (from `strategy.experimental_distribute_values_from_function`), runs the
    step on every replica with `strategy.run` and concatenates the replicas'
    results in replica order.

    Cache keys are canonical forms of the method and the options, so the same
    method with the same options is one key however it was built: a
    `functools.partial` by its function, arguments and keywords; a function by
    its code, defaults and the canonical forms of the values it closes over (so
    a wrapper such as `smooth(gradients, repetitions=20)` written inline in a
    loop, or a lambda in a loop, is the same key each time); a bound method by
    its function and object; an object with `__wrapped__` and `get_config()`
    by its type, wrapped method and config. Other hashable values are keyed by
    value (with their type), lists, tuples and dicts element by element, numpy
    arrays and eager tensors by dtype, shape and a digest of their bytes (they
    are baked into the trace as constants, so equal contents may share a
    function), and anything else (variables, unhashable objects) by `id()`,
    kept alive by the cache entry so the id cannot be reused. Models that do
    not support weak references are not cached: each call builds a fresh
    function.

    Args:
        method: an attribution method following the library's contract.
        model: the model passed to `method`.
        spatial_axis: passed to `method` and to `postprocessing`.
        postprocessing: `fn(maps, axis=spatial_axis)`, or `None`.
        resizing: `True` (to the input's height and width), `(height, width)`,
            or `False`/`None` (no resizing).
        jit_compile: compile the step with XLA.
        strategy: a `tf.distribute.Strategy`, or `None` for the current device.
        **method_kwargs: options forwarded to `method`.

    Returns:
        A `tf.function` `fn(x, indices, chunk=None) -> (logits, maps)`, with
        the attribute `unit_widths`.

    Example:
        >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Dense(2)])
        >>> def maps_only(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        ...     maps = model(inputs)
        ...     return tf.reduce_mean(maps, axis=spatial_axis), maps
        >>> fn = compiled_function(maps_only, model)
        >>> fn is compiled_function(maps_only, model)
        True
        >>> import functools
        >>> fn = compiled_function(functools.partial(maps_only), model)
        >>> fn is compiled_function(functools.partial(maps_only), model)
        True
    """
    check_callable(method, "method")
    model = resolve_model(model)
    if postprocessing is not None:
        check_callable(postprocessing, "postprocessing")
    resizing = _check_resizing(resizing)
    spatial_axis = _check_spatial_axis(spatial_axis)
    if not isinstance(jit_compile, bool):
        raise TypeError(
            f"`jit_compile` must be a bool. {received('jit_compile', jit_compile)}"
        )
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "`strategy` must be a `tf.distribute.Strategy` or None. "
            f"{received('strategy', strategy)}"
        )
    settings = (spatial_axis, postprocessing, resizing, jit_compile, strategy)
    keepalive: list[Any] = []
    key = _canonical((method, settings, method_kwargs), keepalive)

    def build(model_ref: Callable[[], Any]) -> Callable:
        return _build(model_ref, method, *settings, dict(method_kwargs))

    return cached_function(model, key, build, keepalive)


def _check_resizing(resizing: Any) -> bool | tuple[int, int] | None:
    """`True`, `False`, `None` or a `(height, width)` of positive integers."""
    if resizing is None or isinstance(resizing, bool):
        return resizing
    if isinstance(resizing, (tuple, list)) and len(resizing) == 2:
        if all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in resizing
        ):
            return int(resizing[0]), int(resizing[1])
    raise ValueError(
        "`resizing` must be True, False, None or a (height, width) pair of "
        f"positive integers. {received('resizing', resizing)}"
    )


def _check_spatial_axis(spatial_axis: Any) -> tuple[int, ...]:
    """A non-empty tuple of integer axes."""
    if isinstance(spatial_axis, (tuple, list)) and spatial_axis:
        if all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool)
            for a in spatial_axis
        ):
            return tuple(int(a) for a in spatial_axis)
    raise ValueError(
        "`spatial_axis` must be a non-empty tuple of integer axes, e.g. (-3, -2). "
        f"{received('spatial_axis', spatial_axis)}"
    )


def split_for_replicas(strategy: tf.distribute.Strategy, batch: tf.Tensor) -> Any:
    """Split a batch into equal contiguous slices, one per replica of `strategy`.

    When the batch does not divide evenly, its last row is repeated until it
    does, so no replica gets an empty slice; the caller keeps the first
    `len(batch)` rows of the concatenated results.

    Args:
        strategy: the strategy whose replicas run the step.
        batch: a tensor `(B, ...)`.

    Returns:
        Distributed values for `strategy.run`, replica `r` holding rows
        `[r * s, (r + 1) * s)` of the padded batch, `s = ceil(B / replicas)`.
    """
    replicas = strategy.num_replicas_in_sync
    size = int(batch.shape[0])
    per_replica = -(-size // replicas)
    padding = per_replica * replicas - size
    if padding:
        batch = tf.concat([batch, tf.repeat(batch[-1:], padding, axis=0)], axis=0)
    devices = strategy.extended.worker_devices
    slices = []
    for replica in range(replicas):
        with tf.device(devices[replica % len(devices)]):
            start = replica * per_replica
            slices.append(tf.identity(batch[start : start + per_replica]))
    return strategy.experimental_distribute_values_from_function(
        lambda context: slices[context.replica_id_in_sync_group]
    )


def _build(
    model_ref: Callable[[], Any],
    method: Callable,
    spatial_axis: tuple[int, ...],
    postprocessing: Callable | None,
    resizing: bool | tuple[int, int] | None,
    jit_compile: bool,
    strategy: tf.distribute.Strategy | None,
    method_kwargs: dict[str, Any],
) -> Callable:
    """A new `tf.function` running one explaining step."""
    name = getattr(method, "__name__", type(method).__name__)
    chunks = "batch_size" not in method_kwargs and _accepts(method, "batch_size")
    widths: list[int | None] = []

    def call(x: Any, indices: Any, chunk: Any) -> tuple[Any, Any]:
        kwargs = dict(method_kwargs, spatial_axis=spatial_axis)
        if chunks and chunk is not None:
            try:
                return method(
                    model_ref(), x, indices, batch_size=tf.shape(chunk)[0], **kwargs
                )
            except (TypeError, ValueError) as error:
                if not str(error).startswith("`batch_size`"):
                    raise
            if chunk.shape[0] is not None:  # The method wants a Python int.
                kwargs["batch_size"] = int(chunk.shape[0])
        return method(model_ref(), x, indices, **kwargs)

    def step(x: Any, indices: Any, chunk: Any = None) -> tuple[tf.Tensor, tf.Tensor]:
        with recording_unit_widths() as seen:
            try:
                logits, maps = call(x, indices, chunk)
            finally:  # Also when the gather fails (eagerly): explain() checks.
                widths.extend(seen)
        _check_outputs(name, logits, maps, nested=_is_nest(maps))
        if _is_nest(maps):  # One map per input, each sized as its input.
            maps = tf.nest.map_structure(finish, maps, _matching(maps, x))
        else:
            maps = finish(maps, tf.nest.flatten(x)[0])
        return tf.cast(logits, tf.float32), maps

    def finish(maps: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
        """Post-process and resize the maps of one input (image maps only)."""
        maps = tf.cast(maps, tf.float32)
        if maps.shape.rank != 4:  # The maps of a non-image input: as they are.
            return maps
        if postprocessing is not None:
            maps = postprocessing(maps, axis=(-3, -2))
        size = _target_size(image, resizing, spatial_axis)
        if size is not None:
            maps = tf.image.resize(maps, size, method="bilinear")
        return tf.cast(maps, tf.float32)

    step.__name__ = f"explain_{name}"
    if strategy is None:
        function = traced_function(step, reduce_retracing=True, jit_compile=jit_compile)
        function.unit_widths = widths
        return function

    # XLA compiles the per-replica step; the cross-replica part stays a graph.
    # MirroredStrategy.run lifts a `tf.function` (a TracedFunction's
    # `.function`) so that XLA sees every replica at once.
    replica = traced_function(step, jit_compile=True) if jit_compile else None

    def distributed_step(
        x: Any, indices: Any, chunk: Any = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        if replica is None:
            outputs = strategy.run(step, args=(x, indices, chunk))
        else:
            outputs = replica.attempt(
                lambda function: strategy.run(function, args=(x, indices, chunk))
            )
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Local results hold only this worker's replicas: all-gather the
            # rows of every worker, in replica order.
            return tf.nest.map_structure(
                lambda output: strategy.gather(output, axis=0), outputs
            )
        # One worker: its local results are every replica's, in order (no
        # collective op, which would clash with other strategies' collectives
        # in the same process).
        return tf.nest.map_structure(
            lambda output: tf.concat(
                strategy.experimental_local_results(output), axis=0
            ),
            outputs,
        )

    distributed_step.__name__ = f"explain_{name}_distributed"
    function = traced_function(distributed_step, reduce_retracing=True)
    function.unit_widths = widths
    return function


def _accepts(method: Callable, name: str) -> bool:
    """Whether `method` (or the method it wraps) takes a `name` argument."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


def _is_nest(value: Any) -> bool:
    return isinstance(value, (tuple, list, dict))


def _matching(maps: Any, x: Any) -> Any:
    """The inputs `x` in the structure of a method's nest of maps (one map per
    input, as captum: a tuple of inputs gives a tuple of maps)."""
    try:
        tf.nest.assert_same_structure(maps, x, check_types=False)
    except (ValueError, TypeError):
        shown = tf.nest.map_structure(lambda _: "map", maps)
        raise ValueError(
            "A method returning several maps must return one per input, in the "
            f"structure of the inputs; got {shown} for inputs of structure "
            f"{tf.nest.map_structure(lambda _: 'input', x)}."
        ) from None
    return x


def _check_outputs(name: str, logits: Any, maps: Any, nested: bool = False) -> None:
    """Fail at trace time when a method breaks the `(B, L)`, `(B, H', W', L)` rule
    (with several inputs: one map per input, `(B, H', W', L)` for an image and
    `(B, *shape, L)` for another input)."""
    pairs = [("logits", logits, 2)]
    if nested:  # A map of one input of several: at least (B, L).
        pairs += [("maps", m, None) for m in tf.nest.flatten(maps)]
    else:
        pairs.append(("maps", maps, 4))
    for what, value, rank in pairs:
        shape = getattr(value, "shape", None)
        found = getattr(shape, "rank", None) if shape is not None else None
        if rank is None:
            if shape is None or (found is not None and found < 2):
                raise ValueError(
                    f"`method` {name!r} must return one map per input, each of "
                    f"rank 2 or more; got shape {shape}."
                )
            continue
        if shape is None or (found is not None and found != rank):
            raise ValueError(
                f"`method` {name!r} must return `(logits, maps)` with {what} of "
                f"rank {rank}, got {what} of shape {shape}."
            )


def _target_size(x: tf.Tensor, resizing: Any, spatial_axis: tuple[int, ...]) -> Any:
    """The `(height, width)` to resize maps to, or `None` for no resizing."""
    if resizing is True:
        if x.shape.rank is None or x.shape.rank < 3 or len(spatial_axis) != 2:
            return None  # Not an image: keep the method's resolution.
        axes = [a % x.shape.rank for a in spatial_axis]
        static = [x.shape[a] for a in axes]
        if all(side is not None for side in static):
            return tuple(int(side) for side in static)
        return tf.gather(tf.shape(x), axes)
    if resizing is None or resizing is False:
        return None
    return tuple(int(side) for side in resizing)
