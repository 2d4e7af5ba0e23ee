"""Seeded transforms: exact geometry, padding, blur, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_interp.synthesis import transforms as T


def images(batch=2, height=9, width=11, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, height, width, channels)).astype(np.float32)


def run(transform, x, seed=(1, 2)):
    return np.asarray(transform(tf.constant(x), T.as_seed(seed)))


# -- random numbers and seeds ---------------------------------------------------
def test_uniform_is_seeded_and_uniform():
    a = np.asarray(T.uniform(T.as_seed(5), [10000]))
    assert np.array_equal(a, np.asarray(T.uniform(T.as_seed(5), [10000])))
    assert not np.array_equal(a, np.asarray(T.uniform(T.as_seed(6), [10000])))
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.01 and abs(a.var() - 1 / 12) < 0.005


def test_fold_seed_gives_distinct_seeds():
    seeds = {tuple(np.asarray(T.fold_seed(T.as_seed(0), k))) for k in range(200)}
    assert len(seeds) == 200


# -- pad -----------------------------------------------------------------------
def test_pad_constant_fills_value():
    x = images()
    out = run(T.pad(3, value=0.25), x)
    assert out.shape == (2, 15, 17, 3)
    np.testing.assert_array_equal(out[:, 3:-3, 3:-3], x)
    border = np.ones(out.shape[1:3], bool)
    border[3:-3, 3:-3] = False
    assert np.all(out[:, border] == 0.25)


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge"])
def test_pad_modes_match_numpy(mode):
    x = images(height=5, width=6)
    out = run(T.pad(4, mode=mode), x)
    expected = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode=mode)
    np.testing.assert_array_equal(out, expected)


def test_pad_zero_is_identity():
    x = images()
    np.testing.assert_array_equal(run(T.pad(0), x), x)


# -- jitter --------------------------------------------------------------------
def test_jitter_crops_a_window_at_an_offset_in_range():
    x = images(batch=8)
    d = 3
    out = run(T.jitter(d), x, seed=(4, 0))
    assert out.shape == (8, 6, 8, 3)
    offsets = set()
    for b in range(8):
        found = [
            (oy, ox)
            for oy in range(d + 1)
            for ox in range(d + 1)
            if np.array_equal(out[b], x[b, oy : oy + 6, ox : ox + 8])
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 1  # each image draws its own offset


def test_jitter_covers_all_offsets():
    x = np.arange(6 * 6, dtype=np.float32).reshape(1, 6, 6, 1)
    seen = {tuple(run(T.jitter(2), x, seed=(s, 0))[0, 0, 0]) for s in range(60)}
    starts = {(oy * 6 + ox,) for oy in range(3) for ox in range(3)}
    assert seen == starts


# -- geometry ------------------------------------------------------------------
@pytest.mark.parametrize(
    "transform",
    [
        T.random_rotate([0]),
        T.random_scale([1.0]),
        T.random_affine(),
        T.preset(None),
        T.compose(),
    ],
)
def test_identity_geometry_is_exact(transform):
    x = images()
    np.testing.assert_array_equal(run(transform, x), x)


def test_rotate_90_is_rot90_counter_clockwise():
    x = images(height=7, width=7)
    out = run(T.random_rotate([90]), x)
    np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)


def test_scale_two_zooms_about_the_centre():
    x = images(batch=1, height=9, width=9, channels=1)
    out = run(T.random_scale([2.0]), x)
    # output pixel (y, x) reads input 4 + (y - 4) / 2: the centre stays put
    assert out[0, 4, 4, 0] == pytest.approx(x[0, 4, 4, 0])
    expected = 0.5 * (x[0, 4, 4, 0] + x[0, 4, 5, 0])
    assert out[0, 4, 5, 0] == pytest.approx(expected, abs=1e-6)


def test_affine_shift_translates():
    x = images(batch=1, height=8, width=8)
    # rotate 0, zoom 1, shift uniform in [-t, t] * size: find the shift
    out = run(T.random_affine(translate=0.25), x, seed=(3, 1))
    shifted = [
        (dy, dx)
        for dy in range(-2, 3)
        for dx in range(-2, 3)
        if np.abs(out[0, 2:6, 2:6] - x[0, 2 - dy : 6 - dy, 2 - dx : 6 - dx]).max() < 0.6
    ]
    assert shifted  # some near-integer shift explains the centre


def test_constant_fill_mode():
    x = np.ones((1, 5, 5, 1), np.float32)
    out = run(T.random_scale([0.5], mode="constant"), x)
    assert out[0, 0, 0, 0] == pytest.approx(0.5)  # the fill value
    assert out[0, 2, 2, 0] == pytest.approx(1.0)


def test_presets_grow_in_strength():
    x = images(batch=16, height=24, width=24, seed=2)
    change = [
        np.abs(run(T.preset(name), x) - x).mean() for name in ("s", "m", "l", "xl")
    ]
    assert change == sorted(change) and change[0] > 0


def test_standard_transforms_shape():
    out = run(T.standard_transforms, images(height=20, width=20))
    assert out.shape == (2, 32, 32, 3)  # pad 12 each side, jitter 8 then 4


# -- blur ----------------------------------------------------------------------
def test_blur_of_delta_is_gaussian_kernel():
    sigma = 1.5
    radius = int(4 * sigma + 0.5)
    x = np.zeros((1, 21, 21, 2), np.float32)
    x[0, 10, 10, 1] = 1.0
    out = run(T.blur(sigma), x)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    expected = np.zeros((21, 21))
    expected[10 - radius : 11 + radius, 10 - radius : 11 + radius] = np.outer(k, k)
    np.testing.assert_allclose(out[0, ..., 1], expected, atol=1e-7)
    assert np.all(out[0, ..., 0] == 0)  # channels are not mixed


@pytest.mark.parametrize("mode", ["symmetric", "edge", "constant", "reflect"])
def test_blur_matches_scipy(mode):
    ndimage = pytest.importorskip("scipy.ndimage")
    names = {"symmetric": "reflect", "edge": "nearest", "constant": "constant"}
    names["reflect"] = "mirror"
    x = images(batch=1, height=12, width=10, channels=3)
    out = run(T.blur(1.2, mode=mode), x)
    expected = np.stack(
        [
            ndimage.gaussian_filter(x[0, ..., c], 1.2, mode=names[mode], truncate=4.0)
            for c in range(3)
        ],
        -1,
    )
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_blur_with_a_variable_sigma_is_a_schedule():
    sigma = tf.Variable(2.0)
    blurred = T.blur(sigma)
    compiled = tf.function(blurred)
    x = images()
    strong = np.asarray(compiled(tf.constant(x), T.as_seed(0)))
    sigma.assign(0.0)
    weak = np.asarray(compiled(tf.constant(x), T.as_seed(0)))
    np.testing.assert_allclose(weak, x, atol=1e-6)
    assert np.abs(strong - x).mean() > 0.05


# -- composition and determinism -----------------------------------------------
def test_compose_threads_derived_seeds():
    a, b = T.jitter(2), T.random_rotate(list(range(-20, 21)))
    x = tf.constant(images())
    seed = T.as_seed((7, 7))
    expected = b(a(x, T.fold_seed(seed, 0)), T.fold_seed(seed, 1))
    np.testing.assert_array_equal(T.compose(a, [b])(x, seed), expected)


@pytest.mark.parametrize(
    "transform, random",
    [
        (T.standard_transforms, True),
        (T.preset("xl"), True),
        (T.jitter(4), True),
        (T.blur(1.0), False),
    ],
    ids=["standard", "xl", "jitter", "blur"],
)
def test_seeded_and_eager_equals_compiled(transform, random):
    x = tf.constant(images(height=24, width=24))
    seed = T.as_seed((11, 3))
    eager = np.asarray(transform(x, seed))
    np.testing.assert_array_equal(eager, np.asarray(transform(x, seed)))
    compiled = np.asarray(tf.function(transform)(x, seed))
    np.testing.assert_allclose(compiled, eager, atol=1e-5)
    xla = np.asarray(tf.function(transform, jit_compile=True)(x, seed))
    np.testing.assert_allclose(xla, eager, atol=1e-5)
    if random:
        other = np.asarray(transform(x, T.as_seed((12, 3))))
        assert other.shape != eager.shape or not np.array_equal(other, eager)


def test_errors():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        T.pad(2, mode="wrap")
    with pytest.raises(ValueError, match="`width` must be a non-negative integer"):
        T.pad(-1)
    with pytest.raises(TypeError, match="`d` must be an integer"):
        T.jitter(1.5)
    with pytest.raises(ValueError, match="`scales` must be a non-empty sequence"):
        T.random_scale([])
    with pytest.raises(ValueError, match="finite positive numbers"):
        T.random_scale([1.0, -1.0])
    with pytest.raises(TypeError, match="`angles_degrees` must be a sequence"):
        T.random_rotate(10)
    with pytest.raises(ValueError, match="`sigma` must be a finite non-negative"):
        T.blur(-1.0)
    with pytest.raises(ValueError, match="`transform` must be one of 's', 'm'"):
        T.preset("xxl")
    with pytest.raises(TypeError, match="compose\\(\\) takes transforms"):
        T.compose(T.jitter(1), 3)
