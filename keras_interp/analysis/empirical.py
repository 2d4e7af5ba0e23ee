"""Empirical receptive fields: what input region a unit responds to in practice.

Two estimates, to compare with `theoretical_receptive_field`:

- `gradient_receptive_field`: the input pixels where the gradient of a unit is
  not negligible, and their bounding box (with any weights it lies inside the
  theoretical region; for trained networks it is usually much smaller, the
  "effective receptive field" of Luo et al.);
- `empirical_receptive_field`: dnnbrain's `EmpiricalReceptiveField`, the mean
  over images of the upsampled activation map cut out at the most active unit's
  theoretical region.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_interp._validation import (
    check_images,
    check_non_negative_float,
    check_positive_int,
    received,
)
from keras_interp.analysis._batching import exposed_layer, run_step, unit_saliency
from keras_interp.analysis.receptive_field import (
    layer_path,
    theoretical_receptive_field,
)
from keras_interp.engine import explain
from keras_interp.inspection.expose import expose
from keras_interp.inspection.graph import find_layer, output_shape
from keras_interp.inspection.targets import Target
from keras_interp.methods.activation import upsampled_activation


@dataclasses.dataclass(frozen=True, eq=False)
class GradientReceptiveField:
    """The input region where a unit's gradient is not negligible.

    Attributes:
        layer: the layer's path.
        unit: the unit's position in the feature map.
        region: `[(h0, h1), (w0, w1)]`, the bounding box of `mask` as pixel
            edges (`image[h0:h1, w0:w1]`), like `ReceptiveField.find_region`;
            `None` if the gradient is zero everywhere.
        size: the box's extent per axis, `(h1 - h0, w1 - w0)` (zeros if empty).
        saliency: `(H, W)` float32: `sum_images sum_channels |d a / d x|`,
            divided by its maximum.
        mask: `(H, W)` bool: `saliency > threshold`.
    """

    layer: str
    unit: tuple[int, ...]
    region: list[tuple[int, int]] | None
    size: tuple[int, ...]
    saliency: np.ndarray
    mask: np.ndarray


def gradient_receptive_field(
    model: Any,
    layer: Any,
    unit: Sequence[int],
    *,
    channel: int | None = None,
    images: Any = None,
    num_images: int = 4,
    threshold: float = 1e-6,
    seed: int = 0,
    batch_size: int = 32,
) -> GradientReceptiveField:
    """The input region a unit depends on, measured by its gradient.

        saliency(p) = sum_b sum_c |d a(x_b) / d x_b[p, c]|,  a = A[unit, channel]

    normalised by its maximum and thresholded; the bounding box of the pixels
    above the threshold is the region. The gradient is zero outside the
    theoretical receptive field, so the region lies inside
    `theoretical_receptive_field(model, layer).find_region(unit)` whatever the
    weights; inside it, dead ReLUs, max pooling and small weights make it
    smaller (Luo et al.'s effective receptive field).

    Args:
        model: a functional or Sequential Keras model with one image input.
        layer: the layer (any `find_layer` reference), with a spatial output.
        unit: the unit's position `(row, col)` in the layer's map (an int for
            1-D maps), counted from 0.
        channel: the unit's channel, counted from 0 (dnnbrain counts from 1).
            `None` uses the unit's whole activation vector, through the
            gradient of `||A[unit, :]||^2 / 2`.
        images: float images `(B, H, W, C)` (or one image `(H, W, C)`);
            defaults to `num_images` images of uniform noise in [0, 1] of the
            model's input size.
        num_images: how many noise images when `images` is None.
        threshold: the fraction of the maximum above which a pixel counts.
        seed: the seed of the noise images.
        batch_size: images per gradient computation.

    Returns:
        A `GradientReceptiveField` (`region`, `size`, `saliency`, `mask`).

    Raises:
        ValueError: an unknown layer (with the closest names), a layer without
            a spatial output, `unit` or `channel` out of range, images that do
            not match the model's image input, a model without one image input,
            or a `threshold` outside [0, 1).
        TypeError: a non-integer `channel`, `num_images` or `batch_size`.

    Example:
        >>> model = keras.Sequential([keras.Input((16, 16, 1)),
        ...     keras.layers.Conv2D(2, 3, name="c1"),
        ...     keras.layers.Conv2D(2, 3, strides=2, name="c2")])
        >>> result = gradient_receptive_field(model, "c2", (0, 3), channel=0)
        >>> result.region, result.size
        ([(0, 5), (6, 11)], (5, 5))

    References:
        Luo, Li, Urtasun and Zemel, Understanding the Effective Receptive Field
        in Deep Convolutional Neural Networks, NeurIPS 2016. arXiv:1701.04128.
    """
    path = layer_path(model, layer)
    target = find_layer(model, path)
    threshold = check_non_negative_float(threshold, "threshold")
    if threshold >= 1:
        raise ValueError(
            f"`threshold` must be in [0, 1), a fraction of the maximum gradient. "
            f"{received('threshold', threshold)}"
        )
    batch_size = check_positive_int(batch_size, "batch_size")
    images = _images(model, images, num_images, seed)
    exposed = exposed_layer(
        model,
        ("unit", path),
        lambda source: expose(source, arguments=[], outputs=[target]),
    )
    shape = _activation_shape(exposed, target, images)
    unit = _check_unit(shape, path, unit)
    _check_channel(channel, shape[-1], path, allow_none=True)
    # The engine batches and compiles; the unit and channel are data (flat
    # positions in the activation), so every unit shares one trace.
    channels = range(shape[-1]) if channel is None else [channel]
    positions = np.ravel_multi_index(
        tuple(np.array([(*unit, c) for c in channels]).T), shape[1:]
    )
    saliency = run_step(
        unit_saliency,
        exposed,
        images,
        np.tile(positions.astype(np.int32), (len(images), 1)),
        batch_size=batch_size,
        squared=channel is None,
    )
    total = saliency[..., 0].astype(np.float64).sum(axis=0)
    peak = total.max()
    saliency = (total / peak if peak > 0 else total).astype(np.float32)
    mask = saliency > threshold if peak > 0 else np.zeros_like(saliency, bool)
    region = None
    if mask.any():
        region = []
        for axis in range(mask.ndim):
            others = tuple(a for a in range(mask.ndim) if a != axis)
            hits = np.flatnonzero(mask.any(axis=others))
            region.append((int(hits[0]), int(hits[-1]) + 1))
    size = tuple(h - low for low, h in region) if region else (0,) * mask.ndim
    return GradientReceptiveField(path, unit, region, size, saliency, mask)


def empirical_receptive_field(
    model: Any,
    layer: Any,
    channel: int,
    images: Any,
    *,
    interpolation: str = "bicubic",
    threshold: float | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """dnnbrain's empirical receptive field from upsampled activation maps.

    For each image, the channel's activation map is upsampled to the image
    (`methods.upsampled_activation`); every unit's theoretical region is cut
    out of it and scored by its mean over the full field size `r`, the part
    outside the image counting as the map's minimum; the best unit's region
    (first in row-major order on ties) is pasted into an `r x r` canvas filled
    with the map's minimum, at its place in the unclipped field (a region
    clipped at the top or left lands at the bottom or right of the canvas).
    The result is the mean canvas over the images: where, inside its
    theoretical field, the channel's strongest response lies.

    Differences from dnnbrain: the image size is the images' own (dnnbrain
    hard-codes 224 in the border alignment); the canvas background is the map's
    minimum rather than zero (so that an image whose field is clipped does not
    darken the mean below the map's range); `generate_rf`, broken in dnnbrain,
    is not reproduced.

    Args:
        model: a functional or Sequential Keras model with one image input.
        layer: the layer (any `find_layer` reference), with a spatial output.
        channel: the channel, counted from 0 (dnnbrain counts from 1).
        images: float images `(B, H, W, C)`, already preprocessed for the model.
        interpolation: `"nearest"`, `"bilinear"`, `"bicubic"` or `"area"`.
        threshold: `None`, or `t` in [0, 1]: values below each map's `100 t`-th
            percentile are raised to it (dnnbrain's `interp_threshold`).
        batch_size: images per forward pass.

    Returns:
        float32 `(r_h, r_w)`, the theoretical field's size.

    Raises:
        ValueError: an unknown layer (with the closest names), a layer without
            a spatial output, `channel` out of range, images that are not
            `(B, H, W, C)` or do not match the model's input, or a bad
            `interpolation` or `threshold`.
        TypeError: a non-integer `channel`.

    Example:
        >>> model = keras.Sequential([keras.Input((16, 16, 1)),
        ...     keras.layers.Conv2D(2, 3, name="c1"),
        ...     keras.layers.Conv2D(2, 3, strides=2, name="c2")])
        >>> images = np.random.default_rng(0).uniform(size=(4, 16, 16, 1))
        >>> empirical_receptive_field(model, "c2", 1, images).shape
        (5, 5)

    References:
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Frontiers in Computational Neuroscience 2020.
        Zhou et al., Object Detectors Emerge in Deep Scene CNNs, ICLR 2015.
        arXiv:1412.6856.
    """
    path = layer_path(model, layer)
    target = find_layer(model, path)
    images = check_images(images, "images")
    _check_input(model, images)
    batch_size = check_positive_int(batch_size, "batch_size")
    shape = output_shape(target)
    if shape is not None and len(shape) != 4:
        raise ValueError(
            f"Layer {path!r} has no spatial output (shape {shape}): the "
            f"empirical receptive field needs a map (B, h, w, C). "
            f"{received('layer', layer)}"
        )
    field = theoretical_receptive_field(model, path, input_shape=images.shape[1:3])
    exposed = exposed_layer(
        model,
        ("upsampled", path),
        lambda source: expose(
            source, arguments=[target], outputs=Target(target, reduce="mean")
        ),
    )
    if shape is None or shape[-1] is None:  # a layer called several times
        shape = tuple(exposed(images[:1], training=False)[1].shape)
    _check_channel(channel, shape[-1], path)
    # The engine batches and compiles (one forward pass per `batch_size`).
    _, maps = explain(
        upsampled_activation,
        exposed,
        images,
        np.full((len(images), 1), channel, np.int64),
        batch_size=batch_size,
        postprocessing=None,
        resizing=False,
        verbose=0,
        interpolation=interpolation,
        threshold=threshold,
    )
    total = np.zeros(field.size, np.float64)
    for up in np.asarray(maps)[..., 0].astype(np.float64):
        total += _best_patch(up, field)
    return (total / len(images)).astype(np.float32)


def _best_patch(up: np.ndarray, field: Any) -> np.ndarray:
    """The canvas of one image: its most active unit's region in the field."""
    floor = up.min()
    table = np.pad(up.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed areas
    rows = np.array([field.find_region((u, 0))[0] for u in range(field.map_size[0])])
    cols = np.array([field.find_region((0, v))[1] for v in range(field.map_size[1])])
    (h0, h1), (w0, w1) = rows.T[:, :, None], cols.T[:, None, :]
    sums = table[h1, w1] - table[h0, w1] - table[h1, w0] + table[h0, w0]
    area = (h1 - h0) * (w1 - w0)
    full = field.size[0] * field.size[1]
    scores = (sums + (full - area) * floor) / full
    u, v = np.unravel_index(np.argmax(scores), scores.shape)
    canvas = np.full(field.size, floor)
    (a0, a1), (b0, b1) = field.find_region((int(u), int(v)))
    (c0, _), (d0, _) = field.find_region((int(u), int(v)), clip=False)
    canvas[a0 - c0 : a1 - c0, b0 - d0 : b1 - d0] = up[a0:a1, b0:b1]
    return canvas


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _image_input(model: Any) -> tuple:
    """The shape of `model`'s one image input, or raise."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or len(inputs[0].shape) < 3:
        shapes = [tuple(t.shape) for t in inputs]
        raise ValueError(
            "Empirical receptive fields need a model with one image input "
            f"(B, H, W, C); model {model.name!r} has inputs {shapes}. "
            f"{received('model', model.name)}"
        )
    return tuple(inputs[0].shape)


def _check_input(model: Any, images: np.ndarray) -> None:
    """Raise unless `images` fit `model`'s image input."""
    expected = _image_input(model)
    if images.ndim != len(expected) or expected[-1] not in (None, images.shape[-1]):
        wanted = ", ".join(map(str, expected[1:]))
        raise ValueError(
            f"`images` must be images of shape (B, {wanted}) for model "
            f"{model.name!r}. {received('images', images)}"
        )


def _images(model: Any, images: Any, num_images: int, seed: int) -> np.ndarray:
    """The images to differentiate on: given, or uniform noise in [0, 1]."""
    expected = _image_input(model)
    if images is None:
        if any(n is None for n in expected[1:]):
            raise ValueError(
                f"Model {model.name!r} accepts inputs of any size {expected}: "
                f"give `images` to measure the gradient on. "
                f"{received('images', images)}"
            )
        num_images = check_positive_int(num_images, "num_images")
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 1, (num_images, *expected[1:])).astype(np.float32)
    array = np.asarray(images)
    if array.ndim == len(expected) - 1:
        array = array[None]
    array = check_images(array, "images", rank=len(expected))
    _check_input(model, array)
    return array


def _activation_shape(exposed: Any, target: Any, images: np.ndarray) -> tuple:
    """The shape `(B, ..., C)` of the exposed activation: static, or (for a
    layer called several times or a model of any image size) probed on one
    image."""
    shape = output_shape(target)
    if shape is None or any(n is None for n in shape[1:]):
        shape = tuple(_first(exposed(images[:1], training=False)).shape)
    return tuple(shape)


def _check_unit(shape: tuple, path: str, unit: Any) -> tuple[int, ...]:
    if len(shape) < 3:
        raise ValueError(
            f"Layer {path!r} has no spatial output (shape {shape}): a unit needs "
            f"a map (B, h, w, C). {received('layer', path)}"
        )
    spatial = shape[1:-1]
    unit = (unit,) if isinstance(unit, (int, np.integer)) else unit
    valid = isinstance(unit, (tuple, list)) and len(unit) == len(spatial)
    if not valid or not all(
        isinstance(u, (int, np.integer)) and not isinstance(u, bool) for u in unit
    ):
        raise ValueError(
            f"`unit` must be {len(spatial)} integer(s), one per spatial axis of "
            f"layer {path!r}. {received('unit', unit)}"
        )
    if any(not 0 <= u < n for u, n in zip(unit, spatial)):
        raise ValueError(
            f"`unit` is outside the feature map of layer {path!r}, of size "
            f"{spatial}. {received('unit', unit)}"
        )
    return tuple(int(u) for u in unit)


def _check_channel(channel: Any, channels: int, path: str, allow_none=False) -> None:
    if channel is None and allow_none:
        return
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise TypeError(
            f"`channel` must be an integer (counted from 0). "
            f"{received('channel', channel)}"
        )
    if not 0 <= channel < channels:
        raise ValueError(
            f"`channel` must be in [0, {channels}) for layer {path!r} "
            f"(channels are counted from 0). {received('channel', channel)}"
        )
