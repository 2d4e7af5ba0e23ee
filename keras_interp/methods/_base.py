"""What every method shares: calling the model, and the scores it explains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import received
from keras_interp.inspection.expose import check_one_output, hand_exposed, is_exposed
from keras_interp.inspection.graph import has_graph, run_graph
from keras_interp.inspection.units import gather_units


def forward(model: Any, inputs: tf.Tensor) -> list[tf.Tensor]:
    """Call `model` in inference mode and return its outputs as a list.

    Works for Keras 3 and tf_keras models, exposed models (whose first output
    is the explained scores), and any callable (a TF-Hub layer, a concrete
    function) that does not take `training`. Functional and Sequential models
    run layer by layer (`run_graph`), so their declared input shape does not
    refuse other image sizes (rescaled copies in `tta`, say) that their layers
    accept.
    """
    if has_graph(model) and not is_exposed(model):
        outputs, _ = run_graph(model, inputs, training=False)
    else:
        try:
            outputs = model(inputs, training=False)
        except TypeError:
            outputs = model(inputs)
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return list(outputs)


def check_single_output(model: Any, outputs: Sequence[Any], extra: int = 0) -> None:
    """Refuse a plain Keras model with several outputs: which one is explained
    must be chosen (`select_output` / `Target(output=...)`), never guessed.

    Exposed models and other callables (whose first output is the scores by
    contract) pass, and so does a plain model returning `[scores, *extra]`
    when the caller takes `extra` tensors after the scores (keras-explainable's
    hand-exposed `Model(inputs, [logits, activations])` for a CAM).

    Raises:
        ValueError: `model` is a graph model that returned several outputs.
    """
    if len(outputs) > 1 + extra and not hand_exposed(model):
        check_one_output(model)


def scores(
    model: Any, inputs: tf.Tensor, indices: Any, extra: int = 0
) -> tuple[tf.Tensor, list]:
    """`(selected scores (B, L), other outputs)` of one forward pass.

    The first output of the model is what is explained (see `Target`); the
    units named by `indices` are gathered from it. A plain Keras model with
    more outputs than the scores and the `extra` tensors the caller reads
    (activations, for a CAM) is refused (`check_single_output`): select one
    output first.
    """
    outputs = forward(model, inputs)
    check_single_output(model, outputs, extra)
    first, *rest = outputs
    first = tf.convert_to_tensor(first)
    if first.shape.rank != 2:
        raise ValueError(
            "The explained output must be scores of shape (batch, units); the "
            f"model returned shape {tuple(first.shape)}. Expose a Target, e.g. "
            "expose(model, outputs=Target(layer, reduce='mean'))."
        )
    return gather_units(first, indices), rest


Size = Any  # A Python int when the shape is static, else a scalar int32 tensor.


def is_nest(inputs: Any) -> bool:
    """Whether `inputs` holds several model inputs (a tuple, list or dict)."""
    return isinstance(inputs, (tuple, list, dict))


def float_inputs(inputs: Any) -> Any:
    """`inputs` (a tensor, or a nest for a model with several inputs) as
    float32 tensors of the same structure."""

    def cast(value: Any) -> tf.Tensor:
        value = tf.convert_to_tensor(value)
        return value if value.dtype == tf.float32 else tf.cast(value, tf.float32)

    return tf.nest.map_structure(cast, inputs)


def units_last(values: tf.Tensor) -> tf.Tensor:
    """`(B, L, *shape)` per-unit values as `(B, *shape, L)`: the map of an input
    that is not an image (a vector `(B, D)` gives maps `(B, D, L)`)."""
    rank = values.shape.rank
    return tf.transpose(values, [0, *range(2, rank), 1])


def channels_last(
    tensor: Any, spatial_axis: Sequence[int], arg: str = "inputs"
) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """`tensor` (rank 4) as float32 `(B, H, W, C)`, and the function undoing it.

    `spatial_axis` names the height and width axes (`(-3, -2)` channels-last,
    `(-2, -1)` channels-first); the other non-batch axis holds the channels.
    """
    if is_nest(tensor):
        raise ValueError(
            f"`{arg}` must be one image tensor: this method explains a single "
            "image input and does not take several inputs (a tuple, list or "
            f"dict). {received(arg, type(tensor).__name__)}"
        )
    tensor = tf.cast(tf.convert_to_tensor(tensor), tf.float32)
    if tensor.shape.rank != 4:
        raise ValueError(
            f"`{arg}` must have rank 4 (batch, height, width, channels), got "
            f"shape {tuple(tensor.shape)}. {received(arg, tensor)}"
        )
    axes = None
    if isinstance(spatial_axis, (tuple, list)) and len(spatial_axis) == 2:
        if all(isinstance(a, (int, np.integer)) for a in spatial_axis):
            if all(-4 <= a < 4 for a in spatial_axis):
                axes = [int(a) % 4 for a in spatial_axis]
    if axes is None or 0 in axes or axes[0] == axes[1]:
        raise ValueError(
            "`spatial_axis` must be two distinct non-batch axes of a rank-4 "
            f"tensor, e.g. (-3, -2). {received('spatial_axis', spatial_axis)}"
        )
    perm = [0, *axes, ({1, 2, 3} - set(axes)).pop()]
    if perm == [0, 1, 2, 3]:
        return tensor, lambda t: t
    inverse = [int(i) for i in np.argsort(perm)]
    return tf.transpose(tensor, perm), lambda t: tf.transpose(t, inverse)


def size(tensor: tf.Tensor, axis: int) -> Size:
    """The static size of `axis` if known, else the dynamic one."""
    static = tensor.shape[axis]
    return int(static) if static is not None else tf.shape(tensor)[axis]


def chunked(
    total: Size,
    batch_size: int,
    update: Callable[[Any, tf.Tensor, tf.Tensor], Any],
    state: Any,
) -> Any:
    """Fold `update(state, jobs, valid)` over jobs `0..total-1` in chunks.

    Each chunk holds `min(batch_size, total)` job ids (int32); the last chunk
    is padded by repeating the last job, with `valid` (float 0/1) marking the
    real ones, so every chunk has the same shape (as XLA requires).
    """
    return chunked_within(total, total, batch_size, update, state)


def _mix(x: tf.Tensor) -> tf.Tensor:
    """Wellons' lowbias32 integer hash on uint32 (wrapping arithmetic)."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def hashed_normal(shape: Any, seed: Any, key: Any, stddev: float = 1.0) -> tf.Tensor:
    """Gaussian noise that is a pure function of `(seed, key, position)`.

    A counter-based generator (an integer hash of each element's index, then
    Box-Muller), so it gives the same numbers eagerly, under `tf.function` and
    under XLA, with seeds that are tensors. (`tf.random.stateless_normal` does
    not: with a seed computed at run time, XLA's kernel draws other numbers
    than TensorFlow's on CPU.)

    Args:
        shape: the output shape.
        seed: an int (or int tensor) chosen by the user.
        key: an int32 tensor scalar, e.g. an image fingerprint.
        stddev: the standard deviation.

    Returns:
        float32 noise of `shape`.
    """
    size = tf.reduce_prod(tf.cast(shape, tf.int32))
    # Box-Muller gives two normals per pair of uniforms: hash half as many.
    index = tf.cast(tf.range((size + 1) // 2), tf.uint32)
    seed, key = tf.cast(seed, tf.uint32), tf.cast(key, tf.uint32)
    base = _mix(tf.bitwise.bitwise_xor(_mix(seed), key))
    first = _mix(index * 2 + base)
    second = _mix(index * 2 + 1 + base)
    scale = 2.0**-24
    u1 = (tf.cast(tf.bitwise.right_shift(first, 8), tf.float32) + 0.5) * scale
    u2 = (tf.cast(tf.bitwise.right_shift(second, 8), tf.float32) + 0.5) * scale
    radius = tf.sqrt(-2.0 * tf.math.log(u1))
    angle = 2.0 * np.pi * u2
    normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=0)
    normal = normal[:size]
    return tf.reshape(normal * stddev, shape)


def chunked_within(
    total: Size,
    capacity: Size,
    batch_size: Any,
    update: Callable[[Any, tf.Tensor, tf.Tensor], Any],
    state: Any,
) -> Any:
    """`chunked` over jobs `0..total-1` where `total <= capacity` is only known
    at run time (a count of selected jobs, say).

    The chunk size is `min(batch_size, capacity)`, a bound that does not depend
    on `total`, so it stays a constant under XLA (which refuses shapes that
    depend on values) while the number of chunks, `ceil(total / chunk)`, is a
    run-time loop bound. `batch_size` may be an int or a scalar int32 tensor.
    """
    chunk = tf.maximum(tf.minimum(batch_size, capacity), 1)
    count = (total + chunk - 1) // chunk

    def body(step, state):
        jobs = step * chunk + tf.range(chunk)
        valid = tf.cast(jobs < total, tf.float32)
        return step + 1, update(state, tf.minimum(jobs, total - 1), valid)

    _, state = tf.while_loop(
        lambda step, _: step < count,
        body,
        (tf.constant(0), state),
        parallel_iterations=1,  # One chunk in memory at a time.
    )
    return state
