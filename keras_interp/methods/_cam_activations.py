"""What the CAMs share: the exposed activations, channels last, and their
gradients.

`spatial_axis` names the height and width axes of the INPUTS, as in every
method: `(-3, -2)` for channels-last images `(B, H, W, C)`, `(-2, -1)` for
channels-first ones `(B, C, H, W)`. The exposed activations of a model are laid
out as its inputs, so they are read with the same axes and moved channels last
`(B, h, w, K)` (their gradients `(B, L, h, w, K)`) before any CAM arithmetic:
the maps come back `(B, h, w, L)` in both layouts. Activations that are not
rank 4 (a 1-D convolution's `(B, T, K)`, say) keep the older meaning:
`spatial_axis` names their own spatial axes, before the channel axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import received
from keras_interp.methods._base import channels_last, is_nest, scores
from keras_interp.methods._differentiate import channels_last_grads

SPATIAL_AXIS = (-3, -2)


def exposed_outputs(model: Any, inputs: Any, method: str) -> tuple:
    """`(scores (B, K), activations (B, ..., C))` of one forward pass of an
    exposed model; a clear error for any other model."""
    full, rest = scores(model, inputs, None, extra=1)
    if len(rest) != 1:
        raise ValueError(
            f"`{method}` explains an intermediate layer, so `model` must be an "
            "exposed model whose call returns [scores, activations], e.g. "
            f"`{method}(expose(model), x)`; this model returned {1 + len(rest)} "
            f"output(s). {received('model', getattr(model, 'name', model))}"
        )
    activations = rest[0]
    if activations.shape.rank is not None and activations.shape.rank < 3:
        raise ValueError(
            f"`{method}` needs spatial activations (batch, ..., channels) as the "
            "second output of `model`, e.g. the input of the global pooling "
            f"layer; got shape {tuple(activations.shape)}. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    return full, activations


def spatial_axes(spatial_axis: int | Sequence[int], rank: int | None) -> tuple:
    """`spatial_axis` as negative axes of channels-last activations (so the
    same numbers index the spatial axes of a Jacobian `(B, L, ..., C)`)."""
    axes = (spatial_axis,) if isinstance(spatial_axis, int) else spatial_axis
    rank = 4 if rank is None else rank
    try:
        axes = tuple(int(a) - rank if int(a) >= 0 else int(a) for a in axes)
    except (TypeError, ValueError):
        axes = ()
    if (
        not axes
        or len(set(axes)) != len(axes)
        or any(a < 1 - rank or a > -2 for a in axes)
    ):
        raise ValueError(
            "`spatial_axis` must name distinct axes of the activations between "
            f"the batch and the channel axes (rank {rank}), e.g. (-3, -2). "
            f"{received('spatial_axis', spatial_axis)}"
        )
    return axes


def image_axes(spatial_axis: Any, method: str) -> tuple[int, int]:
    """`spatial_axis` as `(-3, -2)` (channels last) or `(-2, -1)` (channels
    first), the two layouts of images a masking CAM reads, or a clear error."""
    try:
        axes = tuple(int(a) % 4 for a in spatial_axis)
    except (TypeError, ValueError):
        axes = ()
    if axes not in ((1, 2), (2, 3)):
        raise ValueError(
            f"`{method}` masks image activations, so `spatial_axis` must be "
            "(-3, -2) (channels last) or (-2, -1) (channels first). "
            f"{received('spatial_axis', spatial_axis)}"
        )
    return (-3, -2) if axes == (1, 2) else (-2, -1)


def _is_pair(spatial_axis: Any) -> bool:
    return isinstance(spatial_axis, (tuple, list)) and len(spatial_axis) == 2


def image_layout(activations: tf.Tensor, spatial_axis: Any) -> bool:
    """Whether `spatial_axis` names the height and width of image activations
    (rank 4, a pair of axes), which are then moved channels last."""
    return activations.shape.rank == 4 and _is_pair(spatial_axis)


def cam_activations(
    activations: tf.Tensor, spatial_axis: Any
) -> tuple[tf.Tensor, tuple, Callable[[tf.Tensor], tf.Tensor]]:
    """Activations channels last, the axes pooled into channel weights, and the
    function moving their Jacobian channels last.

    Args:
        activations: the exposed activations, laid out as the inputs:
            `(B, h, w, K)` or `(B, K, h, w)` (or another rank).
        spatial_axis: the inputs' height and width axes.

    Returns:
        `(activations, axes, move)`: float32 `(B, h, w, K)` (rank 4), `axes`
        `(-3, -2)` (the negative spatial axes, valid for the activations and
        for a Jacobian `(B, L, h, w, K)` alike), and `move`, taking a Jacobian
        `(B, L, *activations' shape)` to `(B, L, h, w, K)`.

    Raises:
        ValueError: a bad `spatial_axis`.
    """
    if image_layout(activations, spatial_axis):
        moved, _ = channels_last(activations, spatial_axis, "activations")
        return moved, (-3, -2), lambda grads: channels_last_grads(grads, spatial_axis)
    axes = spatial_axes(spatial_axis, activations.shape.rank)
    return tf.cast(activations, tf.float32), axes, lambda grads: grads


def jacobian(tape: tf.GradientTape, selected: tf.Tensor, activations: tf.Tensor):
    """d selected / d activations as `(B, L, ..., C)` float32.

    One backward pass when `L == 1` (samples are independent in inference
    mode, so the gradient of the sum is the per-sample gradient), else one
    vectorised `batch_jacobian`.
    """
    zero = tf.UnconnectedGradients.ZERO
    if selected.shape[-1] == 1:
        # The gradient of a non-scalar target is that of its sum.
        grads = tape.gradient(selected, activations, unconnected_gradients=zero)
        grads = grads[:, None]
    else:
        grads = tape.batch_jacobian(selected, activations, unconnected_gradients=zero)
    return tf.cast(grads, tf.float32)


def first_image(inputs: Any, spatial_axis: Sequence[int], method: str) -> tf.Tensor:
    """The first image (rank 4) of `inputs`, a tensor or a nest of several
    model inputs, channels last `(B, H, W, C)`: what sizes maps made at the
    input resolution."""
    if not is_nest(inputs):
        return channels_last(inputs, spatial_axis)[0]
    for leaf in tf.nest.flatten(inputs):
        if tf.convert_to_tensor(leaf).shape.rank == 4:
            return channels_last(leaf, spatial_axis)[0]
    raise ValueError(
        f"`{method}` makes maps at the size of an image input, but none of the "
        f"inputs has rank 4 (batch, height, width, channels). "
        f"{received('inputs', type(inputs).__name__)}"
    )
