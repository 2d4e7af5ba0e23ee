"""The noisy passes of `smooth`, `vargrad` and `squaregrad` (`methods.meta`).

A method runs on `repetitions` copies of its inputs, the first clean and the
others with Gaussian noise, several copies per call. Inputs may be one tensor
or a nest (tuple, list or dict) for a model with several inputs: every float
input gets its own noise, other inputs (integer ids, say) are copied as they
are, and the method's maps may be one tensor or a nest of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from keras_interp.methods._base import hashed_normal, is_nest

# Mixed into the noise key of input `i` of a nest, so that two inputs with the
# same content still get independent noise (input 0 keeps the plain key).
_INPUT_SALT = 0x2545F491


def copies_per_call(batch: int | None, repetitions: int, batch_size: int) -> int:
    """The largest divisor of `repetitions` whose copies fit in `batch_size`."""
    fit = max(1, batch_size // batch) if batch else 1
    return max(
        d for d in range(1, repetitions + 1) if repetitions % d == 0 and d <= fit
    )


def fingerprint(images: tf.Tensor) -> tf.Tensor:
    """An int32 per image from a few fixed pixels, quantised to 1/1024 so that
    the last-bit differences between eager and XLA arithmetic (e.g. in a
    resize upstream) do not change it."""
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    count = tf.shape(flat)[1]
    picks = tf.stack([0, count // 7, count // 3, count // 2, 2 * count // 3, count - 1])
    values = tf.clip_by_value(tf.gather(flat, picks, axis=1), -1e6, 1e6)
    bits = tf.cast(tf.round(values * 1024.0), tf.int32)  # (B, 6)
    mixed = bits[:, 0]
    for j in range(1, 6):
        mixed = tf.bitwise.bitwise_xor(mixed * 1000003, bits[:, j])
    return mixed


def sample_noise(
    x: tf.Tensor, copies: int, stddev: float, seed: int, salt: int = 0
) -> tf.Tensor:
    """Gaussian noise `(copies, B, ...)` drawn per row of `x` `(B, ...)` from
    `(seed, row content, salt)`: an image gets the same noise whatever batch it
    comes in, so results do not depend on `batch_size` or on the order of the
    data."""
    keys = fingerprint(x)
    if salt:
        keys = tf.bitwise.bitwise_xor(keys, tf.constant(salt * _INPUT_SALT, tf.int32))

    def one(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        image, key = args
        shape = tf.concat([[copies], tf.shape(image)], axis=0)
        return hashed_normal(shape, seed, key, stddev)

    noise = tf.map_fn(one, (x, keys), fn_output_signature=tf.float32)
    return tf.transpose(noise, [1, 0, *range(2, x.shape.rank + 1)])


def as_input(value: Any) -> tf.Tensor:
    """A float input as float32; any other input as a tensor, unchanged."""
    value = tf.convert_to_tensor(value)
    return tf.cast(value, tf.float32) if value.dtype.is_floating else value


def _copies(x: tf.Tensor, salt: int, settings: tuple) -> tf.Tensor:
    """`(R, B, ...)`: `x` clean, then `R - 1` noisy copies (float inputs)."""
    repetitions, noise, seed, _ = settings
    if not x.dtype.is_floating:
        return tf.repeat(x[None], repetitions, axis=0)
    if seed is None:
        shape = tf.concat([[repetitions - 1], tf.shape(x)], axis=0)
        eps = tf.random.normal(shape, stddev=noise)
    else:
        eps = sample_noise(x, repetitions - 1, noise, seed, salt)
    return tf.concat([x[None], x[None] + eps], axis=0)


def noisy_passes(
    method: Callable,
    model: Any,
    inputs: Any,
    indices: Any,
    options: dict[str, Any],
    settings: tuple,
) -> tuple[tf.Tensor, Any]:
    """Run `method` on `repetitions` copies of `inputs` (the first clean, the
    others noisy), `copies_per_call` copies of the batch per call.

    Args:
        method: the wrapped method.
        model: its model.
        inputs: a tensor `(B, ...)` or a nest of them (one per model input).
        indices: int `(B, L)` or `None`.
        options: the method's options.
        settings: `(repetitions, noise, seed, batch_size)`.

    Returns:
        The stacked outputs: logits `(R, B, L)` and maps `(R, B, H', W', L)`
        (a nest of `(R, B, ...)` when the method returns one map per input).
    """
    repetitions, _, _, batch_size = settings
    inputs = tf.nest.map_structure(as_input, inputs)
    flat = tf.nest.flatten(inputs)
    batch = tf.shape(flat[0])[0]
    per_call = copies_per_call(flat[0].shape[0], repetitions, batch_size)
    chunks = repetitions // per_call

    def regroup(copies: tf.Tensor) -> tf.Tensor:  # (R, B, ...) -> (chunks, P*B, ...)
        shape = tf.concat([[chunks, per_call * batch], tf.shape(copies)[2:]], 0)
        return tf.reshape(copies, shape)

    grouped = tf.nest.pack_sequence_as(
        inputs, [regroup(_copies(x, i, settings)) for i, x in enumerate(flat)]
    )
    if indices is not None:
        indices = tf.tile(tf.convert_to_tensor(indices), [per_call, 1])

    def one_chunk(chunk: Any) -> tuple[tf.Tensor, Any]:
        logits, maps = method(model, chunk, indices, **options)
        as_float = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), maps)
        return tf.cast(logits, tf.float32), as_float

    logits, maps = _run_chunks(one_chunk, grouped, chunks, is_nest(inputs))

    def unstack(t: tf.Tensor) -> tf.Tensor:  # (chunks, P * B, ...) -> (R, B, ...)
        shape = tf.concat([[repetitions, batch], tf.shape(t)[2:]], axis=0)
        return tf.reshape(t, shape)

    return unstack(logits), tf.nest.map_structure(unstack, maps)


def _run_chunks(
    one_chunk: Callable, grouped: Any, chunks: int, nested: bool
) -> tuple[tf.Tensor, Any]:
    """`one_chunk` on each of the `chunks` groups, one at a time, outputs
    stacked on a new first axis."""
    first = tf.nest.map_structure(lambda t: t[0], grouped)
    if chunks == 1:
        return tf.nest.map_structure(lambda t: t[None], one_chunk(first))
    if not nested:  # One map, as the contract says: its signature is known.
        return tf.map_fn(
            one_chunk,
            grouped,
            fn_output_signature=(tf.float32, tf.float32),
            parallel_iterations=1,
        )
    # With several inputs, the maps are one tensor (a CAM) or one per input:
    # the first chunk runs alone and tells which; the others follow it.
    head = one_chunk(first)
    with tf.control_dependencies(tf.nest.flatten(head)):  # one chunk at a time
        rest = tf.map_fn(
            one_chunk,
            tf.nest.map_structure(lambda t: t[1:], grouped),
            fn_output_signature=tf.nest.map_structure(lambda _: tf.float32, head),
            parallel_iterations=1,
        )
    return tf.nest.map_structure(
        lambda a, b: tf.concat([a[None], b], axis=0), head, rest
    )
