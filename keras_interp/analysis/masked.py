"""Masked images: the smallest blob of an image that still drives a unit.

dnnbrain's `MaskedImage` (after the "minimal image" masks of Zhou et al.),
ported to channels-last Keras models with its intended behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.ndimage
import skimage.color
import skimage.morphology

from keras_interp._validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    received,
    renamed_argument,
)
from keras_interp.analysis._activation import (
    ChannelActivation,
    as_image,
    check_criterion,
)

_SQUARE = np.ones((3, 3), bool)


@dataclasses.dataclass(frozen=True)
class MaskedImageResult:
    """What `masked_image` found.

    Attributes:
        image: the masked image, float32 `(H, W, 3)` in [0, 1], before
            `preprocessing` (grey repeated on 3 channels unless `grayscale=False`).
        mask: the binary mask `(H, W)` of the returned image.
        soft_mask: the blurred mask `(H, W)` in [0, 1] that was applied.
        activation: the activation of the returned image.
        baseline: the activation of the convex-hull (un-eroded) masked image.
        trace: activations `(T,)` of every mask tried, the hull first; the
            last entry is the first mask below the target, if one was reached.
        erosions: how many 3x3 erosions the returned mask went through.
    """

    image: np.ndarray
    mask: np.ndarray
    soft_mask: np.ndarray
    activation: float
    baseline: float
    trace: np.ndarray
    erosions: int


def masked_image(
    model: Any,
    layer: Any,
    channel: int,
    image: Any,
    unit: tuple[int, int] | None = None,
    stdev_size_thr: float = 1.0,
    filter_sigma: float = 1.0,
    target_reduction_ratio: float = 0.9,
    max_iteration: int = 100,
    *,
    activation_criterion: str = "mean",
    preprocessing: Callable[[np.ndarray], Any] | None = None,
    grayscale: bool = True,
    batch_size: int = 8,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> MaskedImageResult:
    """Shrink a mask over the salient blob of an image while a unit stays active.

    The image is turned grey (`skimage.color.rgb2gray`). Pixels whose contrast
    `|grey - mean(grey)|` exceeds `stdev_size_thr` times its standard deviation
    form the blob, and the mask starts as the blob's convex hull. A mask `m` is
    applied softly: `fm = gaussian_filter(m, filter_sigma)`,
    `masked = fm * grey + (1 - fm) * mean(grey)`. The activation of the
    hull-masked image is the baseline `a0`. The mask is then eroded with a 3x3
    square, one step at a time (it also shrinks from the image border), and
    the function returns the **last** masked image whose activation is still
    `>= target_reduction_ratio * a0`: the smallest mask of the erosion
    sequence that keeps the unit active. If the mask erodes away entirely
    while the activation stays above the target, the uniform mean image is
    returned (the unit does not depend on the blob).

    Differences from dnnbrain: its loop reads an attribute that is never set
    (`activ_loss`) and fails on the first erosion; we compare the recomputed
    activation as intended. dnnbrain returns the first image *below* the
    target; we return the last one at or above it. dnnbrain hard-codes
    224 x 224 inputs and feeds the grey image unnormalised; we keep the
    image's size and apply `preprocessing`. Channels are numbered from 0 here
    (dnnbrain numbers them from 1); `unit` rows and columns too.

    Args:
        model: a functional or Sequential Keras model (nested layers allowed).
        layer: the layer, any `find_layer` reference.
        channel: the channel of `layer`, from 0.
        image: one image: float `(H, W, 3)` in [0, 1], uint8, grey `(H, W)`, a
            path or a PIL image (anything `load_image` accepts).
        unit: `(row, col)` of one unit of the channel map; `None` uses the
            whole map reduced by `activation_criterion` (dnnbrain: the mean).
        stdev_size_thr: the contrast threshold, in standard deviations.
        filter_sigma: the Gaussian blur of the mask, in pixels (0: no blur).
        target_reduction_ratio: the fraction of the baseline activation the
            mask must keep, in (0, 1].
        max_iteration: the most erosions tried.
        activation_criterion: `"mean"` (dnnbrain), `"max"`, `"median"`,
            `"l1"` or `"l2"` (dnnbrain's `"L1"`, `"L2"` too).
        preprocessing: maps a float batch `(N, H, W, 3)` in [0, 1] to the model's
            input range; `None` feeds the images unchanged.
        grayscale: `True` (dnnbrain) returns grey images; `False` masks the
            colour image, filling with its per-channel mean.
        batch_size: erosion steps evaluated per forward pass.
        preprocess: deprecated name of `preprocessing` (warns).

    Returns:
        A `MaskedImageResult`; `result.image` is the masked image `(H, W, 3)`.

    Raises:
        ValueError: unknown layer (with the closest names), channel or unit
            outside the layer's output, a non-image input, bad parameters, an
            image without any contrast, a non-positive baseline activation (no
            reduction ratio of it is meaningful), or an activation still above
            the target after `max_iteration` erosions.
        TypeError: an unsupported image type or a non-integer channel.

    Example:
        >>> model = keras.Sequential([keras.Input((32, 32, 3)),
        ...     keras.layers.Conv2D(1, 3, activation="relu",
        ...                         kernel_initializer="ones", name="conv")])
        >>> image = np.full((32, 32, 3), 0.5, np.float32)
        >>> image[12:20, 12:20] = 1.0  # a bright square: the blob
        >>> result = masked_image(model, "conv", 0, image,
        ...                       activation_criterion="max")
        >>> result.image.shape, result.erosions, int(result.mask.sum())
        ((32, 32, 3), 1, 36)

    References:
        Zhou, Khosla, Lapedriza, Oliva, Torralba, Object detectors emerge in
        deep scene CNNs, ICLR 2015. arXiv:1412.6856.
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Front. Comput. Neurosci. 2020.
    """
    preprocessing = renamed_argument(
        preprocessing, preprocess, "preprocessing", "preprocess"
    )
    criterion = check_criterion(activation_criterion)
    stdev_size_thr = check_non_negative_float(stdev_size_thr, "stdev_size_thr")
    filter_sigma = check_non_negative_float(filter_sigma, "filter_sigma")
    ratio = check_positive_float(target_reduction_ratio, "target_reduction_ratio")
    if ratio > 1:
        raise ValueError(
            "`target_reduction_ratio` must be in (0, 1]. "
            f"{received('target_reduction_ratio', target_reduction_ratio)}"
        )
    max_iteration = check_positive_int(max_iteration, "max_iteration")
    probe = ChannelActivation(
        model,
        layer,
        channel,
        unit=unit,
        preprocessing=preprocessing,
        batch_size=batch_size,
    )
    rgb = as_image(image).astype(np.float64)
    grey = skimage.color.rgb2gray(rgb)
    fluc = np.abs(grey - grey.mean())
    blob = fluc > np.std(fluc) * stdev_size_thr
    if not blob.any():
        raise ValueError(
            "No pixel of `image` stands out from its mean grey level by more "
            f"than {stdev_size_thr} standard deviations: there is no blob to "
            f"mask. {received('image', image)}"
        )
    source = np.repeat(grey[..., None], 3, axis=-1) if grayscale else rgb
    fill = source.mean(axis=(0, 1))

    def apply(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        soft = scipy.ndimage.gaussian_filter(mask.astype(np.float64), filter_sigma)
        masked = soft[..., None] * source + (1 - soft[..., None]) * fill
        return np.clip(masked, 0, 1).astype(np.float32), soft.astype(np.float32)

    mask = skimage.morphology.convex_hull_image(blob)
    current, soft = apply(mask)
    baseline = float(probe(current[None], criterion)[0])
    if not baseline > 0:
        raise ValueError(
            f"The convex-hull masked image gives channel {probe.channel} of "
            f"layer {probe.layer.name!r} a non-positive activation "
            f"({baseline:.4g}), so no reduction ratio of it can be targeted. "
            "Pick a channel (or unit) that the image activates. "
            f"{received('channel', channel)}"
        )
    target = ratio * baseline
    trace, activation, erosions = [baseline], baseline, 0
    while mask.any():
        if erosions >= max_iteration:
            raise ValueError(
                f"After {max_iteration} erosions the activation ({activation:.4g}) "
                f"is still above {ratio} x the baseline ({baseline:.4g}) and the "
                f"mask still covers {int(mask.sum())} pixels. Raise "
                f"`max_iteration` or `target_reduction_ratio`. "
                f"{received('max_iteration', max_iteration)}"
            )
        masks, step = [], mask
        while len(masks) < probe.batch_size and erosions + len(masks) < max_iteration:
            step = scipy.ndimage.binary_erosion(step, _SQUARE, border_value=0)
            masks.append(step)
            if not step.any():
                break
        applied = [apply(m) for m in masks]
        values = probe(np.stack([a for a, _ in applied]), criterion)
        for m, (candidate, candidate_soft), value in zip(masks, applied, values):
            trace.append(float(value))
            if value < target:
                return MaskedImageResult(
                    current, mask, soft, activation, baseline, np.array(trace), erosions
                )
            mask, current, soft, activation = m, candidate, candidate_soft, float(value)
            erosions += 1
    return MaskedImageResult(
        current, mask, soft, activation, baseline, np.array(trace), erosions
    )
