"""Run an attribution method over a whole data set: `explain`, `partial_explain`."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    AUTO_PROGRESS_MIN_STEPS,
    check_callable,
    check_one_of,
    check_positive_int,
    check_units,
    received,
)
from keras_interp.engine.compiled import compiled_function, split_for_replicas
from keras_interp.engine.inputs import (
    Batches,
    array_batches,
    dataset_batches,
)
from keras_interp.engine.models import (
    check_inputs,
    model_facts,
    prepare,
    resolve_model,
)
from keras_interp.engine.precision import check_compute_dtype, with_compute_dtype
from keras_interp.inspection.expose import check_one_output, hand_exposed

#: With `verbose="auto"`, a progress bar is shown from this many batches on
#: (and whenever a data set's length is unknown).
AUTO_PROGRESS_MIN_BATCHES = AUTO_PROGRESS_MIN_STEPS

__all__ = [
    "AUTO_PROGRESS_MIN_BATCHES",
    "Batches",
    "explain",
    "partial_explain",
]


def explain(
    method: Callable,
    model: Any,
    x: np.ndarray | tf.Tensor | tf.data.Dataset,
    y: np.ndarray | tf.Tensor | None = None,
    *,
    batch_size: int = 32,
    postprocessing: Callable | None = None,
    resizing: bool | tuple[int, int] | None = True,
    spatial_axis: tuple[int, ...] = (-3, -2),
    jit_compile: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    compute_dtype: str | None = None,
    verbose: str | int = "auto",
    **method_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Explain a model's outputs on every input with one attribution method.

    Each batch runs `logits, maps = method(model, x, y, spatial_axis=...,
    **method_kwargs)`, then `maps = postprocessing(maps, axis=(-3, -2))`, then
    a bilinear resize to the inputs' height and width; the batches' results
    are concatenated in input order. The step is compiled once per (model,
    method, options) with `tf.function(reduce_retracing=True)` and cached by
    weak reference to the model (see `compiled_function`): repeated calls with
    other batch sizes reuse the same trace (the batch size never enters it), and
    a method built inline (`smooth(gradients, repetitions=20)` in a loop) is
    the same cache entry as its string spec.

    Everything is checked before tracing: the model (`resolve_model`), the
    options (names and values, `keras_interp.methods.check_options`), the
    images (dtype, rank, finite values, channel count and, where the model
    fixes it, height and width) and the indices (integer, shape, within
    int32, checked before any cast). Indices are also checked against the
    number of units of the explained output, after each compiled call and
    before its results are returned, in every mode (eagerly, as a graph and
    under XLA, which would otherwise clamp an out-of-range gather silently):
    the width comes from the model when it has a single `(batch, units)`
    output, else from what the method recorded while tracing (see
    `keras_interp._validation.note_unit_width`).

    `spatial_axis` means one thing: the height and width axes of the inputs
    (`(-3, -2)` channels-last, `(-2, -1)` channels-first; the activations of a
    channels-first model share it). Maps are `(B, H, W, L)` in both layouts.

    Mixed-precision models (float16 or bfloat16 compute) give float32
    results, equal to the float32 model's to about 1% (float16) or 6%
    (bfloat16) of the maps' largest magnitude on the library's tests.
    `compute_dtype` runs a float32 model that way without rebuilding it: a
    copy of the model with every layer under `keras.DTypePolicy(compute_dtype)`
    and the same weights, made once per (model, dtype) and cached with the
    model's compiled functions (`keras_interp.engine.precision`). Results are
    float32 either way. Measured against float32 (max abs difference / max
    |map|; the mixed and plain policies of one dtype agree exactly): on a
    small conv net, float16 1e-3, bfloat16 0.065 (gradients) and 0.006
    (Grad-CAM) (`tests/engine/test_compute_dtype.py`). On MobileNetV2
    (weights=None, alpha 0.35, 64 px, batch norm calibrated), whose random
    deep network amplifies round-off, agreement is poor: Spearman rank
    correlation with float32 0.47 (bfloat16) / 0.73 (float16) for gradients,
    0.66 / 0.97 for Grad-CAM, logits off by 150% / 27%; uncalibrated, its
    logits (~1e-11) underflow to 0 in float16. So float32 stays the default;
    check the agreement on your own model before relying on 16 bits.

    Inputs:

    - numpy arrays and tensors must be float `(B, H, W, C)`. Integer images
      (e.g. uint8) are rejected rather than cast, because they usually need the
      model's own scaling; other float dtypes are cast to float32.
    - a tuple or dict of such arrays (a dict keyed by the model's input names;
      a list works too unless it reads as a list of images) for a model with
      several inputs: each is checked, all must have the same length, and they
      are sliced into batches together; the method receives the nest.
    - a `tf.data.Dataset` yields images, or `(images, indices)` pairs. It is
      used as given when its images have rank 4 (already batched; `batch_size`
      is then ignored) and batched with `batch_size` when they have rank 3.
      For a model with several inputs it yields a dict of inputs (keyed by the
      model's input names), a tuple of as many float tensors as the model has
      inputs, or `(inputs, indices)` pairs of either; it is used as given when
      each input has one more axis than the model declares (batched), else
      batched with `batch_size`, and the results are those of the same arrays
      given in memory.
      The element spec is checked up front (rank, dtypes); each batch is
      checked for NaN/inf images, channels and indices out of range as it
      arrives. An infinite data set is refused, and empty batches are skipped.

    With a `strategy`, each batch (`batch_size` is the global batch size) is
    split into equal contiguous slices, one per replica, padding the last rows
    by repetition when the batch does not divide evenly; the padding is
    dropped from the results. This is done with
    `strategy.experimental_distribute_values_from_function` rather than
    `experimental_distribute_dataset`, whose re-batching hands an empty slice
    to some replicas on a small final batch, which Jacobian-based methods
    cannot run on. Results come back in input order on a single worker.

    Args:
        method: an attribution method, `fn(model, inputs, indices=None, *,
            spatial_axis=(-3, -2), **options) -> (logits, maps)`, or its
            registry name or spec, e.g. `"smooth(gradcam, seed=0)"`.
        model: the model `method` explains, a callable, or a path to a
            `.keras`/`.h5` file or a Keras SavedModel directory (loaded once;
            see `resolve_model`). A plain model given to a method that takes
            an exposed one (the CAMs, FullGrad) is exposed as the method's
            record says (`keras_interp.shortcuts.prepare`); give `expose(model,
            arguments=..., outputs=...)` to choose the layer or the target.
        x: images `(B, H, W, C)` as a numpy array or tensor, a tuple or dict
            of arrays (several inputs), or a `tf.data.Dataset` of images (or
            of such nests), optionally as `(images, indices)` pairs.
        y: the units to explain, int `(B, L)` (or `(B,)`, read as `(B, 1)`),
            batched together with `x`. `None` explains every unit. Must be
            `None` when `x` is a data set (put the indices in the data set).
        batch_size: images per step (the global batch size with a strategy).
            Methods that chunk their own forward passes (Score-CAM, occlusion,
            RISE, integrated gradients) get it too, as a run-time value, so it
            bounds the images of every forward pass without a new trace.
        postprocessing: `fn(maps, axis=(-3, -2)) -> maps` applied to each
            batch's maps `(b, H', W', L)` before resizing (e.g. a
            normalisation), or `None`.
        resizing: `True` resizes maps to the images' height and width,
            `(height, width)` to that size, `False` or `None` keeps the
            method's resolution.
        spatial_axis: the height and width axes of the inputs (of each image
            input of a nest), passed to `method`.
        jit_compile: compile the step with XLA.
        strategy: a `tf.distribute.Strategy` to spread each batch over its
            replicas, or `None` to run on the current device.
        compute_dtype: `None` (the model as it is), or `"mixed_bfloat16"`,
            `"mixed_float16"`, `"bfloat16"` or `"float16"`: run a copy of a
            Keras functional or Sequential `model` (not an exposed one) in
            that compute dtype (see above); results stay float32.
        verbose: `0` silent, `1` a progress bar, `2` one line at the end,
            `"auto"` a bar from `AUTO_PROGRESS_MIN_BATCHES` batches on (or when
            the number of batches is unknown), else silent.
        **method_kwargs: options forwarded to `method`.

    Returns:
        `(logits, maps)` as float32 numpy arrays of shapes `(B, L)` and
        `(B, H, W, L)` (or the method's `(B, H', W', L)` without resizing).
        For several inputs, a method that explains each input (the gradient
        methods) returns one map per input in the structure of `x` (a tuple
        gives a tuple, a dict a dict, as captum): `(B, H, W, L)` for an image,
        post-processed and resized to its own size, and `(B, *shape, L)` for
        another input (e.g. `(B, D, L)` for a vector), left as computed. A
        method that explains one layer (the CAMs) returns one map, resized to
        the first input's size.

    Raises:
        TypeError: `method` or `postprocessing` is not callable, `model` is
            not a model, callable or path, `batch_size` is not an integer,
            `strategy` is not a strategy, an option has the wrong type, or `x`
            is a data set of an unsupported structure.
        ValueError: `x` is empty, not finite, not float or not of rank 4 (3 for
            unbatched data sets), has a channel count (or a fixed height and
            width, or a number of inputs) the model does not take; `y` is not
            integer, negative, `>= 2**31`, not below the number of units of the
            explained output, of the wrong rank or length, or given with a
            data set; an unknown option or an option out of range; a model
            path that cannot be loaded; a Keras model with several outputs
            (choose one with `keras_interp.inspection.select_output`);
            `batch_size`, `verbose`, `resizing`, `spatial_axis` or
            `compute_dtype` have a bad value (or `compute_dtype` is given
            with a model that cannot be copied); a data set is infinite.
        FileNotFoundError: `model` is a path to nothing.

    Example:
        >>> from keras_interp.inspection.units import gather_units
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Dense(2)])
        >>> def activation_maps(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        ...     maps = gather_units(model(inputs, training=False), indices)
        ...     return tf.reduce_mean(maps, axis=spatial_axis), maps
        >>> x = np.random.default_rng(0).random((5, 8, 8, 3), dtype="float32")
        >>> logits, maps = explain(activation_maps, model, x, batch_size=2, verbose=0)
        >>> logits.shape, maps.shape
        ((5, 2), (5, 8, 8, 2))
        >>> logits, maps = explain(activation_maps, model, x, y=[0, 1, 1, 0, 1])
        >>> maps.shape
        (5, 8, 8, 1)

    References:
        Bastos and Sadanandan, keras-explainable (the `explain` engine this
        ports to Keras 3), https://github.com/lucasdavid/keras-explainable.
    """
    if isinstance(method, str):
        method = _method_from_spec(method)
    check_callable(method, "method")
    compute_dtype = check_compute_dtype(compute_dtype)
    model = prepare(with_compute_dtype(resolve_model(model), compute_dtype), method)
    if not hand_exposed(model):
        check_one_output(model)
    batch_size = check_positive_int(batch_size, "batch_size")
    check_one_of(verbose, ("auto", 0, 1, 2), "verbose")
    method_kwargs = _check_options(method, method_kwargs)
    function = compiled_function(
        method,
        model,
        spatial_axis=spatial_axis,
        postprocessing=postprocessing,
        resizing=resizing,
        jit_compile=jit_compile,
        strategy=strategy,
        **method_kwargs,
    )
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "`y` must be None when `x` is a tf.data.Dataset: yield (images, "
                f"indices) pairs from the data set instead. {received('y', y)}"
            )
        facts = model_facts(model)
        batches, num_batches = dataset_batches(
            x, batch_size, facts.input_shapes, facts.input_names
        )
    else:
        batches, num_batches = array_batches(x, y, batch_size)
    # Arrays have one shape: their first batch is checked; data sets each batch.
    check_each = isinstance(x, tf.data.Dataset)

    if verbose == "auto":
        show = num_batches is None or num_batches >= AUTO_PROGRESS_MIN_BATCHES
        verbose = 1 if show else 0
    progbar = keras.utils.Progbar(num_batches, verbose=verbose, unit_name="batch")

    static_units = model_facts(model).units
    chunk = tf.zeros((batch_size, 0))  # The chunk size, carried by the shape.
    all_logits, all_maps = [], []
    for done, (x_batch, y_batch) in enumerate(batches, start=1):
        if done == 1 or check_each:
            check_inputs(model, x_batch, spatial_axis)
        size = int(tf.nest.flatten(x_batch)[0].shape[0])
        check_units(y_batch, [static_units], "y")
        if strategy is not None:
            x_batch = tf.nest.map_structure(
                lambda t: split_for_replicas(strategy, t), x_batch
            )
            y_batch = None if y_batch is None else split_for_replicas(strategy, y_batch)
        try:
            logits, maps = function(x_batch, y_batch, chunk)
        except tf.errors.InvalidArgumentError as error:
            indices = None if y_batch is None else _local(strategy, y_batch)
            check_units(indices, function.unit_widths, "y")
            raise error
        if y_batch is not None:
            check_units(_local(strategy, y_batch), function.unit_widths, "y")
        all_logits.append(logits.numpy()[:size])
        all_maps.append(tf.nest.map_structure(lambda m, n=size: m.numpy()[:n], maps))
        if verbose:
            progbar.update(done, finalize=done == num_batches)
    if not all_logits:
        raise ValueError(
            f"`x` must not be empty: the data set yielded no images. {received('x', x)}"
        )
    if verbose and num_batches is None:
        progbar.update(len(all_logits), finalize=True)
    maps = tf.nest.map_structure(
        lambda *parts: _concatenate(list(parts), "maps"), *all_maps
    )
    return _concatenate(all_logits, "logits"), maps


def _local(strategy: Any, values: Any) -> np.ndarray:
    """Distributed (or plain) index tensors as one numpy array."""
    if strategy is None:
        return values.numpy()
    parts = strategy.experimental_local_results(values)
    return np.concatenate([np.asarray(part) for part in parts])


def _check_options(method: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The method's options checked before tracing (names and values, read
    from the method records by `keras_interp.methods.check_options`)."""
    from keras_interp.methods import check_options

    return dict(check_options(method, dict(options)))


def _method_from_spec(spec: str) -> Callable:
    """The registry's method for `spec`; errors name `explain`'s `method`."""
    from keras_interp.methods import get

    try:
        return get(spec)
    except ValueError as error:
        message = str(error).rsplit(" Received: ", 1)[0]
        raise ValueError(f"{message} {received('method', spec)}") from None


def partial_explain(method: Callable, **defaults: Any) -> Callable:
    """`explain` bound to one method, with overridable default options.

    Args:
        method: the attribution method to bind.
        **defaults: default keyword arguments of `explain` (e.g.
            `postprocessing`, `resizing`, `batch_size`) or of `method`;
            each call may override them.

    Returns:
        `fn(model, x, y=None, **kwargs) -> (logits, maps)`, named after
        `method`, with a signature and docstring naming its defaults, and the
        attributes `method` and `defaults`.

    Raises:
        TypeError: `method` is not callable, or a default names `method`,
            `model`, `x` or `y` (the data is given at each call).

    Example:
        >>> from keras_interp.inspection.units import gather_units
        >>> def activation_maps(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        ...     maps = gather_units(model(inputs, training=False), indices)
        ...     return tf.reduce_mean(maps, axis=spatial_axis), maps
        >>> activations = partial_explain(activation_maps, resizing=False, verbose=0)
        >>> activations.__name__
        'activation_maps'
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.MaxPool2D()])
        >>> activations(model, np.ones((2, 8, 8, 3), "float32"))[1].shape
        (2, 4, 4, 3)
    """
    check_callable(method, "method")
    bound = sorted({"method", "model", "x", "y"} & defaults.keys())
    if bound:
        raise TypeError(
            f"`partial_explain` defaults cannot bind {', '.join(bound)}: they are "
            f"given at each call. {received('defaults', defaults)}"
        )
    defaults = dict(defaults)
    name = getattr(method, "__name__", type(method).__name__)

    def explainer(model: Any, x: Any, y: Any = None, **kwargs: Any) -> Any:
        return explain(method, model, x, y, **{**defaults, **kwargs})

    explainer.__name__ = explainer.__qualname__ = name
    explainer.__doc__ = (
        f"Explain a model with `{name}`: `explain({name}, model, x, y, **kwargs)`\n"
        f"with the defaults {defaults!r}, each overridable per call.\n\n"
        "See `keras_interp.engine.explain` for the arguments.\n"
    )
    method_doc = inspect.getdoc(method)
    if method_doc:
        explainer.__doc__ += f"\n`{name}`:\n\n{method_doc}\n"
    explainer.__signature__ = _partial_signature(defaults)
    explainer.method = method
    explainer.defaults = types.MappingProxyType(defaults)
    return explainer


def _partial_signature(defaults: dict[str, Any]) -> inspect.Signature:
    """`explain`'s signature without `method`, showing `defaults`."""
    parameters = list(inspect.signature(explain).parameters.values())[1:]
    shown = [p.replace(default=defaults.get(p.name, p.default)) for p in parameters]
    known = {p.name for p in parameters}
    extra = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
        for k, v in defaults.items()
        if k not in known
    ]
    return inspect.Signature(shown[:-1] + extra + shown[-1:])


def _concatenate(parts: list[np.ndarray], what: str) -> np.ndarray:
    """Concatenate per-batch outputs, explaining a shape mismatch."""
    shapes = {part.shape[1:] for part in parts}
    if len(shapes) > 1:
        raise ValueError(
            f"The batches' {what} have different shapes {sorted(shapes)} and cannot "
            "be concatenated; images of different sizes need a fixed "
            "`resizing=(height, width)`."
        )
    return np.concatenate(parts, axis=0).astype(np.float32, copy=False)
