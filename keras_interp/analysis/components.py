"""Minimal component images: the fewest PCA/ICA components that drive a unit.

dnnbrain's `MinimalComponentImage` is an API without behaviour (every method is
a stub). This is our design, not a port: the image is cut into
non-overlapping square patches, the patches are decomposed with scikit-learn
(PCA or FastICA), and the image is rebuilt as the mean image plus the chosen
components, searched as `minimal_parcel_image` searches parcels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.decomposition import PCA, FastICA

from keras_interp._validation import (
    check_one_of,
    check_positive_int,
    received,
    renamed_argument,
)
from keras_interp.analysis._activation import ChannelActivation, as_image
from keras_interp.analysis.minimal import (
    MinimalImageResult,
    batched_activations,
    check_search,
    search,
)

#: The decompositions `minimal_component_image` accepts.
COMPONENT_METHODS = ("pca", "ica")


@dataclasses.dataclass(frozen=True)
class MinimalComponentResult(MinimalImageResult):
    """A `MinimalImageResult` made of components.

    Attributes:
        mean_image: the image of the mean patch tiled, `(H, W, 3)`.
        components: the contribution of each component to the image,
            `(n, H, W, 3)`, in component order (not sorted);
            `mean_image + components.sum(0)` rebuilds the image (exactly when
            the components span the patches).
    """

    mean_image: np.ndarray | None = None
    components: np.ndarray | None = None


def component_decompose(
    image: Any,
    method: str = "pca",
    n_components: int | None = 32,
    patch_size: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decompose an image into additive components over its patches.

    The image is cut into non-overlapping `patch_size` squares (edge-padded to
    a multiple of it, cropped back at the end); each patch is a vector of
    `patch_size**2 * 3` values. PCA (or FastICA, whitened, seeded) decomposes
    these vectors: `patch = mean + sum_c score[patch, c] * basis[c]`, so the
    image is the mean patch tiled plus, for each component `c`, the image of
    `score[:, c] * basis[c]` put back in place. Components with no variance
    are dropped, so at most the rank of the centred patches are returned.

    Args:
        image: one image, anything `load_image` accepts.
        method: `"pca"` or `"ica"`.
        n_components: the most components; `None` for as many as the rank.
        patch_size: the side of the square patches, in pixels.
        seed: the random state of FastICA.

    Returns:
        `(mean_image, components)`: float32 `(H, W, 3)` and `(n, H, W, 3)`.

    Raises:
        ValueError: an unknown method, a non-image input, or a constant image
            (nothing to decompose).

    References:
        Hyvarinen and Oja, Independent component analysis: algorithms and
        applications, Neural Networks 2000.
    """
    check_one_of(method, COMPONENT_METHODS, "method")
    if n_components is not None:
        n_components = check_positive_int(n_components, "n_components")
    p = check_positive_int(patch_size, "patch_size")
    seed = check_positive_int(seed, "seed", allow_zero=True)
    image = as_image(image)
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, -height % p), (0, -width % p), (0, 0)), mode="edge")
    rows, cols = padded.shape[0] // p, padded.shape[1] // p
    patches = padded.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4)
    patches = patches.reshape(rows * cols, p * p * 3).astype(np.float64)
    mean = patches.mean(axis=0)
    singular = np.linalg.svd(patches - mean, compute_uv=False)
    rank = int(np.sum(singular > singular[0] * 1e-6)) if singular[0] > 1e-9 else 0
    if rank == 0:
        raise ValueError(
            "`image` has identical patches everywhere: there are no components "
            f"to decompose it into. {received('image', image)}"
        )
    n = rank if n_components is None else min(n_components, rank)
    if method == "pca":
        model = PCA(n_components=n, svd_solver="full").fit(patches)
        scores, basis = model.transform(patches), model.components_
    else:
        model = FastICA(
            n_components=n, whiten="unit-variance", random_state=seed, max_iter=1000
        )
        scores, basis = model.fit_transform(patches), model.mixing_.T
    contributions = scores.T[:, :, None] * basis[:, None, :]  # (n, patches, dim)

    def fold(vectors: np.ndarray) -> np.ndarray:
        blocks = vectors.reshape(-1, rows, cols, p, p, 3).transpose(0, 1, 3, 2, 4, 5)
        return blocks.reshape(-1, rows * p, cols * p, 3)[:, :height, :width]

    mean_image = fold(np.broadcast_to(mean, patches.shape))[0]
    return mean_image.astype(np.float32), fold(contributions).astype(np.float32)


def minimal_component_image(
    model: Any,
    layer: Any,
    channel: int,
    image: Any,
    *,
    method: str = "pca",
    n_components: int | None = 32,
    patch_size: int = 8,
    activation_criterion: str = "max",
    search_criterion: str = "max",
    unit: tuple[int, int] | None = None,
    preprocessing: Callable[[np.ndarray], Any] | None = None,
    fit_ratio: float = 0.9,
    search_limit: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> MinimalComponentResult:
    """The fewest PCA/ICA components of an image that drive a channel.

    The image is decomposed by `component_decompose` into a mean image and
    additive components (PCA or FastICA of its non-overlapping patches).
    Components are sorted by the activation of `mean + component` alone
    (descending); the cumulative reconstructions `mean + top-k components`,
    `k = 1..n`, are evaluated, one forward pass per `batch_size` images; the
    search criterion picks `k` as in `minimal_parcel_image`: `"max"` the
    smallest `k` with the largest activation, `"fitting curve"` the knee of a
    monotone fit starting from the mean image's activation. Every image fed
    to the model is clipped to [0, 1].

    This is an extension, not a port: dnnbrain's `MinimalComponentImage`
    declares this API but every method is an empty stub. Channels are
    numbered from 0 here (dnnbrain numbers them from 1).

    Args:
        model: a functional or Sequential Keras model (nested layers allowed).
        layer: the layer, any `find_layer` reference.
        channel: the channel of `layer`, from 0.
        image: one image, anything `load_image` accepts.
        method: `"pca"` or `"ica"`.
        n_components: the most components; `None` for as many as the rank of
            the patches (a full reconstruction).
        patch_size: the side of the square patches, in pixels.
        activation_criterion: `"max"`, `"mean"`, `"median"`, `"l1"` or
            `"l2"` (dnnbrain's `"L1"`, `"L2"` too).
        search_criterion: `"max"` or `"fitting curve"`.
        unit: `(row, col)` of one unit of the channel map.
        preprocessing: maps a float batch `(N, H, W, 3)` in [0, 1] to the model's
            input range; `None` feeds the images unchanged.
        fit_ratio: the fraction of the fitted rise `"fitting curve"` must
            reach, in (0, 1].
        search_limit: consider only the first `search_limit` reconstructions.
        seed: the random state of FastICA.
        batch_size: images per forward pass.
        preprocess: deprecated name of `preprocessing` (warns).

    Returns:
        A `MinimalComponentResult`: `image` `(H, W, 3)`, `used` component
        indices, `curve` `(n,)`, `mean_image`, `components` `(n, H, W, 3)`.

    Raises:
        ValueError: unknown layer (with the closest names), channel or unit
            outside the layer's output, a non-image or constant input, an
            unknown method or criterion.
        TypeError: an unsupported image type.

    Example:
        >>> model = keras.Sequential([keras.Input((32, 32, 3)),
        ...     keras.layers.Conv2D(2, 3, activation="relu", name="conv")])
        >>> result = minimal_component_image(
        ...     model, "conv", 0, np.random.rand(32, 32, 3), n_components=8)
        >>> result.components.shape
        (8, 32, 32, 3)

    References:
        Ullman, Assif, Fetaya, Harari, Atoms of recognition in human and
        computer vision, PNAS 2016.
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Front. Comput. Neurosci. 2020.
    """
    preprocessing = renamed_argument(
        preprocessing, preprocess, "preprocessing", "preprocess"
    )
    check_one_of(method, COMPONENT_METHODS, "method")
    criterion, search_criterion, fit_ratio, search_limit = check_search(
        activation_criterion, search_criterion, fit_ratio, search_limit
    )
    probe = ChannelActivation(
        model,
        layer,
        channel,
        unit=unit,
        preprocessing=preprocessing,
        batch_size=batch_size,
    )
    mean, components = component_decompose(
        image, method, n_components=n_components, patch_size=patch_size, seed=seed
    )
    alone = batched_activations(
        probe, (np.clip(mean + c, 0, 1) for c in components), criterion
    )
    order = np.argsort(-alone, kind="stable")
    count = len(order) if search_limit is None else min(len(order), search_limit)

    def cumulative():
        total = mean.copy()
        for index in order[:count]:
            total = total + components[index]
            yield np.clip(total, 0, 1)

    curve = batched_activations(probe, cumulative(), criterion)
    baseline = float(probe(np.clip(mean, 0, 1)[None], criterion)[0])
    k, fit = search(curve, baseline, search_criterion, fit_ratio)
    minimal = np.clip(mean + components[order[:k]].sum(axis=0), 0, 1)
    return MinimalComponentResult(
        image=minimal.astype(np.float32),
        order=order.astype(np.int32),
        part_activations=alone[order],
        curve=curve,
        baseline=baseline,
        n_parts=k,
        fitted=fit,
        mean_image=mean,
        components=components,
    )
