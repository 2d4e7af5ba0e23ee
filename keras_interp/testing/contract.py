"""The method contract: `assert_method_contract`, a check any method can be
run through (yours before you register it), and the table of tiny models and
small options the library's own methods are checked with
(`tests/methods/test_contract.py`).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_interp import methods
from keras_interp.shortcuts import prepare

SIZE, CLASSES = 12, 3

#: Options that keep every method fast on a 12x12 image.
OPTIONS: dict[str, dict[str, Any]] = {
    "scorecam": {"max_channels": 4},
    "integrated_gradients": {"steps": 4},
    "occlusion": {"window": (4, 4), "stride": (4, 4)},
    "rise": {"num_masks": 8, "grid_size": 2, "seed": 0},
    "upsampled_activation": {"interpolation": "bilinear", "threshold": 0.2},
}

#: Wrappers applied to every method in the table (name -> method -> method).
WRAPPERS = {
    "plain": lambda method: method,
    "smooth": lambda method: methods.smooth(
        method, repetitions=3, noise=0.1, seed=0, batch_size=2
    ),
    "tta": lambda method: methods.tta(method, scales=(0.5,), hflip=True),
}


def _head(x, name: str = "logits", activation: str | None = None):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.layers.Dense(CLASSES, activation=activation, name=name)(x)


def flat_model(seed: int = 0) -> keras.Model:
    """conv(relu) -> conv(relu6) -> GAP -> Dense: a flat functional model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ReLU(6.0, name="r2")(x)
    return keras.Model(inputs, _head(x), name="flat")


def nested_model(seed: int = 0) -> keras.Model:
    """The same layers with the convolutions in a nested Sequential backbone,
    a BatchNormalization, and a softmax head (exposed as logits)."""
    keras.utils.set_random_seed(seed)
    backbone = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(6.0, name="r2"),
        ],
        name="backbone",
    )
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    outputs = _head(backbone(inputs), name="predictions", activation="softmax")
    return keras.Model(inputs, outputs, name="nested")


MODELS = {"flat": flat_model, "nested": nested_model}


def case(name: str, model: keras.Model) -> tuple[Any, Any, dict[str, Any]]:
    """`(method, the model to give it, options)` for a table entry."""
    return methods.METHODS[name], prepare(model, name), dict(OPTIONS.get(name, {}))


def data(batch: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images `(batch, 12, 12, 3)` in [-1, 1] and indices `(batch, 1)`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")
    return x, rng.integers(0, CLASSES, (batch, 1)).astype("int32")


def _close(actual: Any, expected: Any, what: str, atol: float) -> None:
    expected = np.asarray(expected)
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-3)
    np.testing.assert_allclose(
        np.asarray(actual), expected, rtol=atol, atol=atol * scale, err_msg=what
    )


def assert_method_contract(
    method: Any,
    model: Any = None,
    *,
    options: dict[str, Any] | None = None,
    x: Any = None,
    indices: Any = None,
    batch_sizes: tuple[int, ...] = (1, 3),
    jit_compile: bool = True,
    atol: float = 1e-4,
) -> None:
    """Check that `method` keeps the method contract, as the built-in ones do.

    Run it on your own method before registering it (Keras' `run_layer_test`
    is the model). It checks, on `x` (eight random 12x12 images by default):

    1. shapes and dtype: `logits (B, L)` and `maps (B, H', W', L)` float32,
       finite and not all zero;
    2. `indices=None` explains every unit: unit `y`'s logits and map equal
       those explained for `y` alone;
    3. batch-size invariance: `explain(..., batch_size=b)` for each of
       `batch_sizes` (and a batched `tf.data.Dataset`) equals one call;
    4. eager == `tf.function` (through `explain`) == `jit_compile=True`
       (XLA) == a trace with unknown batch and unit counts.

    Args:
        method: a method name, spec or function.
        model: the model to explain; exposed automatically as the method's
            record says (`prepare`). Defaults to `flat_model()`, a small
            conv -> GAP -> Dense classifier of 3 classes.
        options: keyword options for the method.
        x: images `(B, H, W, C)` for `model`.
        indices: int `(B, 1)` units to explain; random ones by default.
        batch_sizes: batch sizes `explain` runs with.
        jit_compile: also check XLA (leave it on unless the method cannot be
            compiled by XLA).
        atol: relative and absolute tolerance (relative to the largest value).

    Raises:
        AssertionError: the first broken rule, named in the message.

    Example:
        >>> assert_method_contract("gradcam")
        >>> def doubled(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        ...     logits, maps = methods.gradients(model, inputs, indices)
        ...     return logits, 2.0 * maps
        >>> assert_method_contract(doubled, jit_compile=False)
    """
    from keras_interp.engine import explain

    function = methods.get(method)
    source = flat_model() if model is None else model  # exposed models hold a
    model = prepare(source, function)  # weak reference: keep `source` alive
    options = dict(options or {})
    if x is None:
        x, default_indices = data()
        indices = default_indices if indices is None else indices
    x = np.asarray(x, np.float32)
    if indices is None:
        outputs = model(x[:1])
        first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        units = int(first.shape[-1])
        rng = np.random.default_rng(0)
        indices = rng.integers(0, units, (len(x), 1)).astype("int32")
    indices = np.asarray(indices, np.int32)
    name = getattr(function, "__name__", repr(method))
    batch = len(x)

    # 1. Shapes, dtype, finite values.
    logits, maps = function(model, tf.constant(x), tf.constant(indices), **options)
    expect = f"{name}: logits of shape {(batch, indices.shape[1])}"
    assert tuple(logits.shape) == (batch, indices.shape[1]), (
        f"{expect}, got {logits.shape}"
    )
    assert maps.shape.rank == 4, f"{name}: maps of rank 4, got {maps.shape}"
    assert maps.shape[0] == batch and maps.shape[-1] == indices.shape[1], (
        f"{name}: maps (B, H', W', L) = ({batch}, ..., {indices.shape[1]}), "
        f"got {maps.shape}"
    )
    assert logits.dtype == tf.float32 and maps.dtype == tf.float32, (
        f"{name}: float32 outputs, got {logits.dtype} and {maps.dtype}"
    )
    assert np.isfinite(logits).all() and np.isfinite(maps).all(), (
        f"{name}: NaN or infinite values"
    )
    assert float(tf.reduce_max(tf.abs(maps))) > 0, f"{name}: all-zero maps"

    # 2. indices=None explains every unit.
    all_logits, all_maps = function(model, tf.constant(x), None, **options)
    rows = np.arange(batch)
    _close(
        np.asarray(all_logits)[rows, indices[:, 0]],
        logits[:, 0],
        f"{name}: logits with indices=None",
        atol,
    )
    _close(
        np.asarray(all_maps)[rows, ..., indices[:, 0]],
        maps[..., 0],
        f"{name}: maps with indices=None",
        atol,
    )

    # 3. Batch-size invariance through the engine.
    run = dict(resizing=False, verbose=0, **options)
    paths = {
        f"explain(batch_size={size})": explain(
            function, model, x, indices, batch_size=size, **run
        )
        for size in batch_sizes
    }
    dataset = tf.data.Dataset.from_tensor_slices((x, indices)).batch(batch)
    paths["explain(tf.data.Dataset)"] = explain(function, model, dataset, **run)
    for path, (path_logits, path_maps) in paths.items():
        _close(path_logits, logits, f"{name}: logits via {path}", atol)
        _close(path_maps, maps, f"{name}: maps via {path}", atol)

    # 4. Eager == XLA == a trace with unknown batch and unit counts (explain
    # above ran it under tf.function).
    def call(images: tf.Tensor, units: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return function(model, images, units, **options)

    compiled = {
        "a signature with unknown batch and units": tf.function(
            call,
            input_signature=[
                tf.TensorSpec((None, *x.shape[1:]), tf.float32),
                tf.TensorSpec((None, None), tf.int32),
            ],
        )
    }
    if jit_compile:
        compiled["jit_compile=True"] = tf.function(call, jit_compile=True)
    for mode, compiled_call in compiled.items():
        got = compiled_call(tf.constant(x), tf.constant(indices))
        _close(got[0], logits, f"{name}: logits under {mode}", atol)
        _close(got[1], maps, f"{name}: maps under {mode}", atol)
