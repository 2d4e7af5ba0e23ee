"""dnnbrain's SynthesisImage as `synthesis_image`: activation rises with every
option, intended behaviour where dnnbrain had bugs, files, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import expose
from keras_interp.synthesis import fourier_filter, synthesis_image
from keras_interp.synthesis.transforms import gaussian_blur

SIZE = 16


def tiny(seed=0):
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(
        6,
        3,
        padding="same",
        activation="relu",
        name="conv",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        bias_initializer=keras.initializers.Constant(0.05),
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs)


MODEL = tiny()
EXPOSED = expose(MODEL, arguments=["conv"], outputs=[])


def channel_map(image, channel=2):
    (acts,) = EXPOSED(tf.constant(image[None], tf.float32))
    return np.asarray(acts)[0, ..., channel]


def start(seed=0):
    return np.random.default_rng(seed).uniform(size=(SIZE, SIZE, 3))


def run(**kw):
    kw.setdefault("n_iter", 15)
    kw.setdefault("verbose", False)
    return synthesis_image(MODEL, "conv", 2, **kw)


# -- behaviour -----------------------------------------------------------------
OPTIONS = {
    "plain": {},
    "max": {"activ_metric": "max"},
    "L1": {"regular_metric": "L1", "regular_lambda": 1e-3},
    "L2": {"regular_metric": "L2", "regular_lambda": 1e-2},
    "TV": {"regular_metric": "TV", "regular_lambda": 1e-3},
    "GB": {"precondition_metric": "GB", "GB_radius": 0.5},
    "Fourier": {"smooth_metric": "Fourier", "factor": 0.3},
    "all": {
        "regular_metric": "TV",
        "regular_lambda": 1e-3,
        "precondition_metric": "GB",
        "GB_radius": 0.3,
        "smooth_metric": "Fourier",
        "factor": 0.3,
    },
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_activation_increases_over_the_initial_image(name):
    image = run(**OPTIONS[name])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
    assert np.isfinite(image).all()
    reduce = np.max if name == "max" else np.mean
    before, after = reduce(channel_map(start())), reduce(channel_map(image))
    assert after > before + 0.1 * abs(before) + 0.01


def test_unit_activation_increases_more_than_the_rest():
    before = channel_map(start())
    row, col = (int(i) for i in np.argwhere(before > 0)[-1])  # an active unit
    gain = channel_map(run(unit=(row, col), n_iter=20)) - before
    assert gain[row, col] > 0.5 and gain[row, col] == gain.max()


def test_init_image_and_seed():
    init = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    image = run(init_image=init, n_iter=1, lr=1e-3)
    np.testing.assert_allclose(image, 0.5, atol=2e-3)  # one Adam step of 1e-3
    assert np.array_equal(run(seed=3), run(seed=3))
    assert not np.array_equal(run(seed=3), run(seed=4))


def test_regular_lambda_none_without_regulariser_works():
    # dnnbrain computed `None * 0` and crashed; we accept it.
    assert run(regular_lambda=None, n_iter=2).shape == (SIZE, SIZE, 3)


def test_regularisers_shrink_what_they_penalise():
    plain = run(n_iter=30)
    l1 = run(n_iter=30, regular_metric="L1", regular_lambda=0.05)
    tv = run(n_iter=30, regular_metric="TV", regular_lambda=0.05)
    assert np.abs(l1).sum() < np.abs(plain).sum()

    def variation(x):
        return np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()

    assert variation(tv) < variation(plain)


def test_fourier_filter_is_symmetric_low_pass():
    f = fourier_filter(8, 10, 0.5)
    assert f.shape == (8, 10) and f.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(f[1:, 1:], f[1:, 1:][::-1, ::-1])  # F[k] = F[N-k]
    assert f[0, 0] == f.max() and f[4, 5] == f.min()
    np.testing.assert_allclose(fourier_filter(8, 10, 0.0), 1.0)


def test_gaussian_blur_precondition_is_per_channel_like_skimage():
    filters = pytest.importorskip("skimage.filters")
    image = start(1).astype(np.float32)
    ours = np.asarray(
        gaussian_blur(image[None], 0.8, radius=int(4 * 0.8 + 0.5), mode="edge")
    )[0]
    expected = filters.gaussian(
        image, sigma=0.8, mode="nearest", channel_axis=-1, preserve_range=True
    )
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_save_step_writes_snapshots(tmp_path):
    from PIL import Image

    run(n_iter=5, save_path=tmp_path / "out", save_step=2)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "synthesized_image.png",
        "synthesized_image_iter0.png",
        "synthesized_image_iter2.png",
        "synthesized_image_iter4.png",
    ]
    final = np.asarray(Image.open(tmp_path / "out" / "synthesized_image.png"))
    assert final.shape == (SIZE, SIZE, 3)
    assert final.min() == 0 and final.max() == 255  # min-max normalised


def test_verbose_prints_the_final_loss(capsys):
    run(n_iter=2, verbose=True)
    assert "Final loss" in capsys.readouterr().out


# -- errors --------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"activ_metric": "median"}, ValueError, "`activ_metric` must be one of"),
        ({"regular_metric": "L3"}, ValueError, "`regular_metric` must be one of"),
        ({"regular_metric": "L1"}, ValueError, "`regular_lambda` must be given"),
        ({"precondition_metric": "GB"}, ValueError, "`GB_radius` must be given"),
        ({"precondition_metric": "blur"}, ValueError, "`precondition_metric`"),
        ({"smooth_metric": "Fourier"}, ValueError, "`factor` must be given"),
        ({"smooth_metric": "Fourier", "factor": -1.0}, ValueError, "`factor` must"),
        ({"unit": (1,)}, ValueError, r"`unit` must be \(row, col\)"),
        ({"unit": (40, 0)}, ValueError, "`unit` is outside"),
        ({"save_step": 2}, ValueError, "`save_step` needs `save_path`"),
        ({"n_iter": 0}, ValueError, "`n_iter` must be a positive integer"),
        ({"lr": 0.0}, ValueError, "`lr` must be a finite positive number"),
    ],
)
def test_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        run(**kwargs)


def test_channel_errors():
    with pytest.raises(ValueError, match="`channel` must be below the 6 channels"):
        synthesis_image(MODEL, "conv", 6, n_iter=1, verbose=False)
    with pytest.raises(ValueError, match="`channel` must be a non-negative integer"):
        synthesis_image(MODEL, "conv", -1, n_iter=1, verbose=False)
