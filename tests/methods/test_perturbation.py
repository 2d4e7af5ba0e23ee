"""Occlusion and RISE on tiny models whose answers are worked out by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import Target, expose
from keras_interp.methods.perturbation import (
    occlusion,
    occlusion_grid_shape,
    rise,
    rise_masks,
)
from keras_interp.testing.models import gap_dense

SIZE, TOP, LEFT, PATCH = 12, 4, 5, 4


def region_model(channels=1, nested=False, height=SIZE, width=SIZE):
    """`logits[0]` = sum of the pixels in rows [4, 8), cols [5, 9) (all channels);
    `logits[1]` = 0.1 * (channel-weighted sum of every pixel) - 1.

    Returns the model and its numpy twin `f(x) -> (B, 2)`.
    """
    kernel = np.zeros((height, width, channels, 2), np.float32)
    kernel[TOP : TOP + PATCH, LEFT : LEFT + PATCH, :, 0] = 1.0
    kernel[..., 1] = 0.1 * np.arange(1, channels + 1)
    kernel = kernel.reshape(-1, 2)
    bias = np.array([0.5, -1.0], np.float32)
    inputs = keras.Input((height, width, channels), name="images")
    x = inputs
    if nested:
        conv = keras.layers.Conv2D(channels, 1, use_bias=False, name="conv")
        backbone = keras.Sequential(
            [keras.Input((height, width, channels)), conv], name="backbone"
        )
        conv.set_weights([np.eye(channels, dtype=np.float32)[None, None]])
        x = backbone(x)
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(x)))
    dense.set_weights([kernel, bias])
    return model, lambda x: x.reshape(len(x), -1) @ kernel + bias


def images(batch=2, channels=1, height=SIZE, width=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 2.0, (batch, height, width, channels)).astype(np.float32)


def spread_reference(grid, height, width, window, stride):
    """Each pixel: the mean of the grid values of the windows covering it."""
    (win_w, win_h), (step_w, step_h) = window, stride
    total = np.zeros((len(grid), height, width, grid.shape[-1]), np.float64)
    count = np.zeros((height, width))
    for i in range(grid.shape[1]):
        for j in range(grid.shape[2]):
            rows = slice(i * step_h, i * step_h + win_h)
            cols = slice(j * step_w, j * step_w + win_w)
            total[:, rows, cols] += grid[:, i : i + 1, j : j + 1]
            count[rows, cols] += 1
    return np.where(count[..., None] > 0, total / np.maximum(count, 1)[..., None], 0)


def occlusion_reference(f, x, window, stride, fill):
    """dnnbrain's loop (occlude each window position, subtract the scores),
    each window's value spread over the pixels it hid."""
    grid = grid_reference(f, x, window, stride, fill)
    return spread_reference(grid, x.shape[1], x.shape[2], window, stride)


def grid_reference(f, x, window, stride, fill):
    """dnnbrain's loop: occlude each window position, subtract the scores."""
    (win_w, win_h), (step_w, step_h) = window, stride
    n_row = (x.shape[1] - win_h) // step_h + 1
    n_col = (x.shape[2] - win_w) // step_w + 1
    clean = f(x)
    out = np.zeros((len(x), n_row, n_col, clean.shape[-1]), np.float32)
    for i in range(n_row):
        for j in range(n_col):
            copy = x.copy()
            rows = slice(i * step_h, i * step_h + win_h)
            copy[:, rows, j * step_w : j * step_w + win_w] = fill
            out[:, i, j] = clean - f(copy)
    return out


def run_modes(fn, *args):
    """`fn(*args)` eagerly, under `tf.function` and under XLA."""
    return [
        fn(*args),
        tf.function(fn)(*args),
        tf.function(fn, jit_compile=True)(*args),
    ]


# --- occlusion: the grid --------------------------------------------------------


def test_grid_shape_matches_dnnbrain_alexnet_example():
    assert occlusion_grid_shape((224, 224)) == (107, 107)  # (224 - 11) // 2 + 1
    assert occlusion_grid_shape((224, 224), (11, 11), (1, 1)) == (214, 214)
    # window = (width, height), stride = (w_step, h_step): dnnbrain's order.
    assert occlusion_grid_shape((20, 30), window=(5, 3), stride=(1, 2)) == (9, 26)
    assert occlusion_grid_shape((5, 5), window=(5, 5), stride=(5, 5)) == (1, 1)


def test_asymmetric_window_follows_width_height_order():
    model, f = region_model(height=10, width=14)
    x = images(1, height=10, width=14)
    logits, maps = occlusion(model, x, window=(5, 3), stride=(3, 2), batch_size=5)
    assert maps.shape == (1, 10, 14, 2)  # the grid: (10-3)//2+1, (14-5)//3+1
    np.testing.assert_allclose(logits, f(x), rtol=1e-6)
    expected = occlusion_reference(f, x, (5, 3), (3, 2), 0.0)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)


# --- occlusion: correctness -----------------------------------------------------


def test_occlusion_localises_exactly_the_region():
    model, f = region_model()
    x = images()
    logits, maps = occlusion(model, x, [[0], [0]], window=(3, 3), stride=(1, 1))
    assert maps.shape == (2, SIZE, SIZE, 1)
    maps = maps.numpy()[..., 0]
    grid = np.zeros((2, 10, 10))
    for i in range(10):
        for j in range(10):
            rows = slice(max(i, TOP), min(i + 3, TOP + PATCH))
            cols = slice(max(j, LEFT), min(j + 3, LEFT + PATCH))
            grid[:, i, j] = x[:, rows, cols, 0].sum(axis=(1, 2))  # 0 if empty
    expected = spread_reference(grid[..., None], SIZE, SIZE, (3, 3), (1, 1))
    np.testing.assert_allclose(maps, expected[..., 0], rtol=1e-5, atol=1e-5)
    # Nonzero exactly on pixels some window over the patch covered (pixels
    # are in [1, 2]): the patch grown by the window, 2 pixels each way.
    overlap = np.zeros((SIZE, SIZE), bool)
    overlap[TOP - 2 : TOP + PATCH + 2, LEFT - 2 : LEFT + PATCH + 2] = True
    np.testing.assert_array_equal(np.abs(maps) > 1e-4, np.stack([overlap] * 2))
    np.testing.assert_allclose(logits[:, 0], f(x)[:, 0], rtol=1e-6)


@pytest.mark.parametrize("window, stride", [((1, 1), (1, 1)), ((2, 2), (2, 2))])
def test_occlusion_maps_are_placed_on_the_pixels(window, stride):
    # Windows that tile the image: each pixel gets its own window's score drop,
    # so the map of the patch logit is the patch, pixel for pixel.
    model, _ = region_model()
    x = images()
    _, maps = occlusion(model, x, [[0], [0]], window=window, stride=stride)
    patch = np.zeros((SIZE, SIZE), bool)
    patch[TOP : TOP + PATCH, LEFT : LEFT + PATCH] = True
    if window == (1, 1):
        expected = np.where(patch, x[..., 0], 0.0)
    else:  # 2x2 blocks: the block's sum of patch pixels, on the block
        inside = np.where(patch, x[..., 0], 0.0).reshape(2, 6, 2, 6, 2)
        expected = np.repeat(np.repeat(inside.sum(axis=(2, 4)), 2, 1), 2, 2)
    np.testing.assert_allclose(maps[..., 0], expected, rtol=1e-5, atol=1e-5)


def test_occlusion_is_not_stretched():
    # Evidence in one pixel (row 2, col 9), windows 4x4 with stride 2 on a
    # 12x12 image: the map peaks on the windows that hid that pixel and is 0
    # where none did, wherever the grid's 5x5 values would be resized to.
    inputs = keras.Input((SIZE, SIZE, 1))
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((SIZE * SIZE, 1), np.float32)
    kernel[2 * SIZE + 9] = 1.0
    dense.set_weights([kernel, np.zeros(1, np.float32)])
    x = np.ones((1, SIZE, SIZE, 1), np.float32)
    _, maps = occlusion(model, x, window=(4, 4), stride=(2, 2))
    maps = maps.numpy()[0, :, :, 0]
    # Windows start at 0, 2, 4, 6, 8; those hiding row 2 start at rows 0 and
    # 2, those hiding col 9 at cols 6 and 8: pixels rows [0, 6), cols [6, 12).
    hidden = np.zeros((SIZE, SIZE), bool)
    hidden[0:6, 6:12] = True
    np.testing.assert_array_equal(maps > 0, hidden)
    assert maps[2, 9] == maps.max() == 1.0  # every window over it hid it
    np.testing.assert_allclose(
        maps, spread_reference(maps_grid(), SIZE, SIZE, (4, 4), (2, 2))[0, ..., 0]
    )


def maps_grid():
    """The 5x5 grid of the single-pixel model above: 1 where a window hid
    pixel (2, 9)."""
    grid = np.zeros((1, 5, 5, 1))
    for i in range(5):
        for j in range(5):
            grid[0, i, j] = (2 * i <= 2 < 2 * i + 4) and (2 * j <= 9 < 2 * j + 4)
    return grid


@pytest.mark.parametrize("occluder", [0.0, 0.5, [0.1, 1.5, -2.0]])
def test_occluder_value_is_used(occluder):
    model, f = region_model(channels=3)
    x = images(channels=3)
    _, maps = occlusion(model, x, window=(4, 4), stride=(2, 3), occluder=occluder)
    fill = np.asarray(occluder, np.float32)
    expected = occlusion_reference(f, x, (4, 4), (2, 3), fill)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-4)


def test_occluding_with_the_pixel_value_changes_nothing():
    model, _ = region_model(channels=3)
    x = np.ones((1, SIZE, SIZE, 3), np.float32) * np.float32([0.2, 0.4, 0.6])
    _, maps = occlusion(model, x, window=(3, 3), occluder=[0.2, 0.4, 0.6])
    np.testing.assert_allclose(maps, 0.0, atol=2e-4)  # float32 sums of ~40


def test_batch_size_does_not_change_the_maps():
    model, _ = region_model()
    x = images(3)
    results = [
        occlusion(model, x, window=(3, 2), stride=(2, 1), batch_size=size)[1]
        for size in (1, 7, 64)
    ]
    for maps in results[1:]:
        np.testing.assert_allclose(maps, results[0], rtol=1e-6, atol=1e-5)


def test_batched_equals_per_sample_and_indices_select_units():
    model, _ = region_model()
    x = images(3)
    indices = np.array([[1, 0], [0, 0], [1, 1]])
    logits, maps = occlusion(model, x, indices, window=(3, 3), stride=(2, 2))
    all_logits, all_maps = occlusion(model, x, window=(3, 3), stride=(2, 2))
    for b in range(3):
        one_logits, one_maps = occlusion(
            model, x[b : b + 1], indices[b : b + 1], window=(3, 3), stride=(2, 2)
        )
        np.testing.assert_allclose(one_maps[0], maps[b], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(one_logits[0], logits[b], rtol=1e-6)
        np.testing.assert_allclose(
            maps[b], tf.gather(all_maps[b], indices[b], axis=-1), atol=1e-5
        )
        np.testing.assert_allclose(logits[b], all_logits[b].numpy()[indices[b]])


def test_occlusion_eager_graph_and_xla_agree():
    model, _ = region_model()
    x = tf.constant(images())

    def fn(x):
        return occlusion(model, x, window=(3, 3), stride=(2, 2), batch_size=7)

    eager, graph, xla = run_modes(fn, x)
    for logits, maps in (graph, xla):
        np.testing.assert_allclose(logits, eager[0], rtol=1e-5)
        np.testing.assert_allclose(maps, eager[1], rtol=1e-5, atol=1e-4)


def test_unknown_image_size_in_a_traced_function():
    model = gap_dense(size=8)
    x = images(2, channels=3, height=8, width=8)
    fn = tf.function(
        lambda x: occlusion(model, x, window=(3, 3), stride=(2, 2), batch_size=5),
        input_signature=[tf.TensorSpec((None, None, None, 3))],
    )
    logits, maps = fn(x)
    expected = occlusion(model, x, window=(3, 3), stride=(2, 2))
    np.testing.assert_allclose(maps, expected[1], rtol=1e-5, atol=1e-5)
    assert maps.shape == (2, 8, 8, 3)


def test_channels_first_inputs():
    model, _ = region_model(channels=3)
    inputs = keras.Input((3, SIZE, SIZE))
    first = keras.Model(inputs, model(keras.layers.Permute((2, 3, 1))(inputs)))
    x = images(channels=3)
    expected = occlusion(model, x, window=(3, 4), stride=(2, 3), occluder=[1, 2, 3])
    result = occlusion(
        first,
        np.transpose(x, (0, 3, 1, 2)),
        window=(3, 4),
        stride=(2, 3),
        occluder=[1, 2, 3],
        spatial_axis=(-2, -1),
    )
    np.testing.assert_allclose(result[1], expected[1], rtol=1e-5, atol=1e-5)


def test_nested_backbone_and_a_channel_target():
    model, f = region_model(channels=2, nested=True)
    x = images(channels=2)
    _, maps = occlusion(model, x, window=(3, 3), stride=(3, 3))
    np.testing.assert_allclose(
        maps, occlusion_reference(f, x, (3, 3), (3, 3), 0.0), rtol=1e-5, atol=1e-5
    )
    # dnnbrain's channel + metric='mean': explain the channel's mean activation.
    exposed = expose(model, arguments=[], outputs=Target("conv", reduce="mean"))
    _, maps = occlusion(exposed, x, [[1], [1]], window=(3, 3), stride=(3, 3))
    blocks = x[..., 1].reshape(2, 4, 3, 4, 3).sum(axis=(2, 4)) / SIZE**2
    pixels = np.repeat(np.repeat(blocks, 3, axis=1), 3, axis=2)
    np.testing.assert_allclose(maps[..., 0], pixels, rtol=1e-5)


# --- occlusion: errors ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": 3}, r"`window` must be a pair \(width, height\).*window=3"),
        ({"window": (3, 0)}, r"positive integers.*window=\(3, 0\)"),
        ({"window": (3.0, 3)}, r"`window` must be a pair"),
        ({"window": (13, 3)}, r"must not exceed the image.*window=\(13, 3\)"),
        ({"stride": (1, 2, 3)}, r"`stride` must be a pair.*stride=\(1, 2, 3\)"),
        ({"stride": (1, 20)}, r"`stride` \(width 1, height 20\) must not exceed"),
        ({"occluder": [0.0, 1.0]}, r"`occluder` must be a finite.*occluder=\[0.0"),
        ({"occluder": float("nan")}, r"`occluder` must be a finite"),
        ({"batch_size": 0}, r"`batch_size` must be a positive integer"),
        ({"spatial_axis": (0, 1)}, r"`spatial_axis` must be two distinct"),
        ({"spatial_axis": (-3, -3)}, r"`spatial_axis` must be two distinct"),
    ],
)
def test_occlusion_errors(kwargs, match):
    model, _ = region_model()
    with pytest.raises(ValueError, match=match):
        occlusion(model, images(1), **kwargs)


def test_occlusion_type_and_rank_errors():
    model, _ = region_model()
    with pytest.raises(TypeError, match="`occluder` must be a number"):
        occlusion(model, images(1), occluder="black")
    with pytest.raises(ValueError, match="`inputs` must have rank 4"):
        occlusion(model, images(1)[0], window=(3, 3))


# --- RISE ---------------------------------------------------------------------

RISE = {"num_masks": 96, "grid_size": 4, "batch_size": 40}


def test_masks_are_seeded_binary_grids_upsampled():
    masks = rise_masks((12, 10), num_masks=300, grid_size=3, seed=1).numpy()
    assert masks.shape == (300, 12, 10)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert abs(masks.mean() - 0.5) < 0.05
    again = rise_masks((12, 10), num_masks=300, grid_size=3, seed=1)
    np.testing.assert_array_equal(masks, again)
    other = rise_masks((12, 10), num_masks=300, grid_size=3, seed=2)
    assert np.abs(masks - other).max() > 0.5
    sparse = rise_masks((12, 10), num_masks=300, grid_size=3, probability=0.2)
    assert abs(float(tf.reduce_mean(sparse)) - 0.2) < 0.05
    # Mask n depends only on (seed, n): a prefix of a longer draw.
    longer = rise_masks((12, 10), num_masks=301, grid_size=3, seed=1)
    np.testing.assert_array_equal(longer[:300], masks)


def test_rise_equals_the_formula_on_its_masks():
    model, f = region_model(channels=2)
    x = images(2, channels=2)
    logits, maps = rise(model, x, probability=0.4, seed=3, **RISE)
    masks = rise_masks((SIZE, SIZE), num_masks=96, grid_size=4, probability=0.4, seed=3)
    masks = masks.numpy()
    masked_scores = np.stack([f(x * m[None, :, :, None]) for m in masks], axis=1)
    expected = np.einsum("bnk,nhw->bhwk", masked_scores, masks) / (96 * 0.4)
    assert maps.shape == (2, SIZE, SIZE, 2)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, f(x), rtol=1e-6)


def test_rise_saliency_is_highest_on_the_region():
    model, _ = region_model()
    _, maps = rise(model, images(1), [[0]], num_masks=400, grid_size=3)
    maps = maps.numpy()[0, :, :, 0]
    inside = np.zeros_like(maps, bool)
    inside[TOP : TOP + PATCH, LEFT : LEFT + PATCH] = True
    # maps = E[f(x m) m] / p: a constant E[f] plus the masks' covariance with f.
    assert maps[inside].mean() > 1.1 * maps[~inside].mean()
    assert np.unravel_index(maps.argmax(), maps.shape) in {
        (r, c) for r in range(TOP, TOP + PATCH) for c in range(LEFT, LEFT + PATCH)
    }


def test_rise_seeds_batch_sizes_and_indices():
    model, _ = region_model()
    x = images(3)
    _, first = rise(model, x, **RISE)
    _, again = rise(model, x, **RISE)
    np.testing.assert_array_equal(first, again)
    _, other = rise(model, x, **{**RISE, "seed": 1})
    assert np.abs(first - other).max() > 1e-2
    for size in (1, 7, 64):
        _, maps = rise(model, x, **{**RISE, "batch_size": size})
        np.testing.assert_allclose(maps, first, rtol=1e-5, atol=1e-4)
    indices = np.array([[1], [0], [1]])
    logits, picked = rise(model, x, indices, **RISE)
    np.testing.assert_allclose(
        picked, tf.gather(first, indices, axis=-1, batch_dims=1), rtol=1e-5, atol=1e-4
    )
    _, single = rise(model, x[1:2], indices[1:2], **RISE)
    np.testing.assert_allclose(single[0], picked[1], rtol=1e-5, atol=1e-4)


def test_rise_eager_graph_and_xla_agree():
    model, _ = region_model()
    x = tf.constant(images())

    def fn(x):
        return rise(model, x, **RISE)

    eager, graph, xla = run_modes(fn, x)
    for logits, maps in (graph, xla):
        np.testing.assert_allclose(logits, eager[0], rtol=1e-5)
        np.testing.assert_allclose(maps, eager[1], rtol=1e-4, atol=1e-4)


def test_rise_unknown_image_size_and_channels_first():
    model = gap_dense(size=8)
    x = images(2, channels=3, height=8, width=8)
    fn = tf.function(
        lambda x: rise(model, x, **RISE),
        input_signature=[tf.TensorSpec((None, None, None, 3))],
    )
    expected = rise(model, x, **RISE)[1]
    np.testing.assert_allclose(fn(x)[1], expected, rtol=1e-5, atol=1e-5)
    inputs = keras.Input((3, 8, 8))
    first = keras.Model(inputs, model(keras.layers.Permute((2, 3, 1))(inputs)))
    xt = np.transpose(x, (0, 3, 1, 2))
    _, maps = rise(first, xt, spatial_axis=(2, 3), **RISE)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_masks": 0}, ValueError, r"`num_masks` must be a positive integer"),
        ({"num_masks": -5}, ValueError, r"Received: num_masks=-5"),
        ({"num_masks": 10.0}, TypeError, r"`num_masks` must be an integer"),
        ({"grid_size": 0}, ValueError, r"`grid_size` must be a positive integer"),
        ({"probability": 0.0}, ValueError, r"`probability` must be in \(0, 1\]"),
        ({"probability": 1.5}, ValueError, r"Received: probability=1.5"),
        ({"probability": "half"}, TypeError, r"`probability` must be a number"),
        ({"seed": -1}, ValueError, r"`seed` must be a non-negative integer"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be a positive integer"),
    ],
)
def test_rise_errors(kwargs, error, match):
    model, _ = region_model()
    with pytest.raises(error, match=match):
        rise(model, images(1), **kwargs)
    if "batch_size" not in kwargs:
        with pytest.raises(error, match=match):
            rise_masks((8, 8), **kwargs)


# --- a run-time (tensor) batch_size, as the engine passes it -------------------


@pytest.mark.parametrize(
    "method, options",
    [
        (occlusion, {"window": (4, 3), "stride": (2, 3)}),
        (rise, {"num_masks": 24, "grid_size": 3}),
    ],
)
@pytest.mark.parametrize("batch_size", [2, 100])
def test_a_tensor_batch_size_equals_the_int(method, options, batch_size):
    model, _ = region_model()
    x, indices = tf.constant(images(3)), tf.constant([[0], [1], [0]])
    want = method(model, x, indices, batch_size=batch_size, **options)
    run = tf.function(lambda x, i, b: method(model, x, i, batch_size=b, **options))
    got = run(x, indices, tf.constant(batch_size))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
    assert np.abs(want[1].numpy()).max() > 0.1  # not trivially zero
    # One trace serves every chunk size.
    run(x, indices, tf.constant(batch_size + 1))
    assert run.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("method", [occlusion, rise])
def test_a_tensor_batch_size_must_be_an_integer_scalar(method):
    model, _ = region_model()
    for bad in (tf.constant(2.0), tf.constant([2, 3])):
        with pytest.raises(TypeError, match="`batch_size` must be a positive.*tensor"):
            method(model, images(1), batch_size=bad)


def test_names():
    assert occlusion.__name__ == "occlusion"
    assert rise.__name__ == "rise"
