"""Recipro-CAM: gradient-free CAM from the network's head alone.

Each spatial position of the exposed feature map is kept alone (the others set
to 0) and only the layers after the exposed layer run on these masked maps: a
batch of `h * w` cheap head passes per image instead of Score-CAM's full
forward passes per channel.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_interp import filters
from keras_interp._validation import check_positive_int, received
from keras_interp.inspection.expose import exposed_layers, is_exposed
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import channels_last, chunked, float_inputs
from keras_interp.methods._cam_activations import image_axes
from keras_interp.methods.record import OptionSpec, method_record


class _Head:
    """Replays an exposed model through `run_graph`'s override: the clean pass
    keeps every layer's output; the head pass feeds masked features to the
    exposed layer and reuses the clean outputs of every layer that does not
    depend on them (the backbone is not run again)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.layer = exposed_layers(model)[1]
        self.link = model.endpoints[1][1]
        self.clean: dict[tuple[int, int], Any] = {}
        self.masked: Any = None
        self.sample: Any = None

    def run(self, inputs: Any, override: Any) -> list:
        self.calls: dict[int, int] = {}
        self.live: dict[int, Any] = {}  # tensors computed from the masked maps
        return self.model.run(inputs, override=override, training=False)

    def _key(self, layer: Any) -> tuple[int, int]:
        count = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = count + 1
        return id(layer), count

    def record(self, layer: Any, args: tuple, kwargs: dict) -> Any:
        out = layer(*args, **kwargs)
        self.clean[self._key(layer)] = out
        return out

    def head(self, layer: Any, args: tuple, kwargs: dict) -> Any:
        key = self._key(layer)
        if layer is self.layer and self.link == "output":
            out = self.masked
        elif layer is self.layer:
            out = layer(self.masked, *args[1:], **kwargs)
        else:
            flat = list(args[0]) if isinstance(args[0], (list, tuple)) else None
            values = flat if flat is not None else list(args)
            if not any(id(v) in self.live for v in values):
                return self.clean[key]
            values = [
                v
                if id(v) in self.live or not tf.is_tensor(v)
                else tf.gather(v, self.sample)
                for v in values
            ]
            out = (
                layer(values, **kwargs)
                if flat is not None
                else layer(*values, **kwargs)
            )
        self.live[id(out)] = out
        return out


@method_record(
    family="cam",
    exposed=True,
    postprocessing=filters.normalize,
    options={"batch_size": OptionSpec.integer(low=1)},
)
def reciprocam(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    spatial_axis: tuple[int, int] = (-3, -2),
    batch_size: int = 64,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Recipro-CAM: the score of the head fed one feature position at a time.

        M_ij = A * e_ij                (A kept at position (i, j), 0 elsewhere)
        maps[b, i, j, l] = S_l(head(M_ij))

    where `A` `(h, w, C)` is the exposed activation of image `b` and `head` the
    layers after the exposed layer. For a `GlobalAveragePooling2D -> Dense`
    head this is `A[i, j] @ W[:, l] / (h w) + bias_l`: CAM divided by `h w`,
    shifted by the bias. Only the head runs on the `h * w` masked maps per
    image (`batch_size` at a time): layers that do not depend on the exposed
    activations (the backbone) are taken from the one clean pass. As the
    paper, no gradients; unlike it, `S` is the exposed score (the logits by
    default: expose `Target(activation="softmax")` for the paper's
    probabilities), and the map is not min-max normalised (post-processing
    does that).

    Args:
        model: exposed model returning `[scores, activations]` (`expose(model)`),
            activations `(B, h, w, C)` (or `(B, C, h, w)`, channels first).
        inputs: the model's inputs `(B, H, W, C_in)`, or a tuple/dict of
            several inputs (one map for the model: the exposed layer's).
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        spatial_axis: the inputs' height and width axes: `(-3, -2)`, or
            `(-2, -1)` for a channels-first model (whose activations are
            then read channels first too).
        batch_size: masked maps per head pass.

    Returns:
        `(scores, maps)` of shapes `(B, L)` and `(B, h, w, L)` (the engine
        resizes to the input).

    Raises:
        ValueError: `model` is not an exposed model with one activation output,
            activations that are not `(B, h, w, C)`, or another `spatial_axis`.
        TypeError: a non-integer `batch_size`.

    Example:
        >>> model = expose(keras_interp.testing.models.gap_dense())
        >>> scores, maps = reciprocam(model, tf.random.normal((2, 8, 8, 3)))
        >>> maps.shape
        TensorShape([2, 8, 8, 3])

    References:
        Byun & Lee, Recipro-CAM: Fast gradient-free visual explanations for
        convolutional neural networks, 2022. arXiv:2209.14074.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not is_exposed(model) or len(exposed_layers(model)) != 2:
        raise ValueError(
            "`reciprocam` runs the layers after an exposed layer, so `model` must "
            "be an exposed model returning [scores, activations], e.g. "
            f"`reciprocam(expose(model), x)`. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    layout = image_axes(spatial_axis, "reciprocam")
    head = _Head(model)
    inputs = float_inputs(inputs)  # One tensor, or a nest of several inputs.
    full, raw = head.run(inputs, head.record)
    if raw.shape.rank != 4 or None in raw.shape[1:]:
        raise ValueError(
            "`reciprocam` needs activations of static shape (batch, height, width,"
            f" channels); got {tuple(raw.shape)}. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    activations, to_layer = channels_last(raw, layout, "activations")
    selected = tf.cast(gather_units(full, indices), tf.float32)
    batch = tf.shape(activations)[0]
    height, width = int(activations.shape[1]), int(activations.shape[2])
    positions = height * width
    if indices is not None:
        indices = tf.convert_to_tensor(indices)

    def update(state, jobs, valid):
        del valid  # a padded job repeats the last one: same row, same value.
        head.sample = jobs // positions
        mask = tf.one_hot(jobs % positions, positions, dtype=activations.dtype)
        mask = tf.reshape(mask, [-1, height, width, 1])
        masked = to_layer(tf.gather(activations, head.sample) * mask)
        head.masked = tf.cast(masked, raw.dtype)
        values = head.run(inputs, head.head)[0]
        units = None if indices is None else tf.gather(indices, head.sample)
        values = tf.cast(gather_units(values, units), tf.float32)
        return tf.tensor_scatter_nd_update(state, jobs[:, None], values)

    state = tf.zeros(tf.stack([batch * positions, tf.shape(selected)[1]]))
    state = chunked(batch * positions, batch_size, update, state)
    return selected, tf.reshape(state, [batch, height, width, -1])
