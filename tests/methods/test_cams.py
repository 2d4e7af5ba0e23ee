"""CAM family: CAM, Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.inspection import Target, expose
from keras_interp.methods.cams import cam, gradcam, gradcampp, layercam
from keras_interp.methods.scorecam import scorecam
from keras_interp.testing import models

METHODS = [cam, gradcam, gradcampp, layercam, scorecam]
ATOL = 1e-5


def close(actual, expected, atol=ATOL, rtol=1e-5):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol, atol)


def images(batch=2, size=8, seed=0):
    return tf.constant(
        np.random.default_rng(seed).normal(size=(batch, size, size, 3)), tf.float32
    )


@pytest.fixture(scope="module")
def gap():
    """`gap_dense` exposed, its activations, logits and kernel (C, K)."""
    model = models.gap_dense()
    exposed = expose(model)
    x = images()
    logits, activations = (t.numpy() for t in exposed(x))
    kernel = model.get_layer("logits").get_weights()[0]
    return exposed, x, logits, activations, kernel


# ---------------------------------------------------------------- tiny models


def one_channel_model():
    """Channel 0 copies the red input, channel 1 the green one; class 0 reads
    channel 0 only, class 1 channel 1 only. Activations are 8x8 for 16x16
    inputs (average pooling), so Score-CAM's masks are upsampled."""
    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", use_bias=False, name="conv")
    h = keras.layers.AveragePooling2D(2, name="pool")(conv(inputs))
    dense = keras.layers.Dense(2, name="logits")
    outputs = dense(keras.layers.GlobalAveragePooling2D(name="gap")(h))
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = kernel[0, 0, 1, 1] = 1.0
    conv.set_weights([kernel])
    dense.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    x = np.zeros((1, 16, 16, 3), np.float32)
    x[0, :6, :6, 0] = 1.0  # red square top-left drives class 0
    x[0, 10:, 10:, 1] = 1.0  # green square bottom-right drives class 1
    return model, tf.constant(x)


def nested_and_flat():
    """The same network twice: a Sequential backbone nested in a functional
    model, and built flat with shared weight values."""
    rng = np.random.default_rng(1)

    def convs():
        return [
            keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2"),
        ]

    backbone = keras.Sequential([keras.Input((8, 8, 3)), *convs()], name="backbone")
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))

    inputs = keras.Input((8, 8, 3))
    h = inputs
    for layer in convs():
        h = layer(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    flat = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))

    for name, shape in [("conv1", (3, 3, 3, 5)), ("conv2", (3, 3, 5, 4))]:
        weights = [rng.normal(size=shape), rng.normal(size=shape[-1]) * 0.1]
        backbone.get_layer(name).set_weights(weights)
        flat.get_layer(name).set_weights(weights)
    weights = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    nested.get_layer("logits").set_weights(weights)
    flat.get_layer("logits").set_weights(weights)
    return nested, flat


def conv_head_model():
    """`conv -> GAP(keepdims) -> Conv2D 1x1 'logits' -> Flatten`, as MobileNet."""
    rng = np.random.default_rng(2)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    h = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(conv(inputs))
    head = keras.layers.Conv2D(3, 1, name="logits")
    model = keras.Model(inputs, keras.layers.Flatten(name="flatten")(head(h)))
    conv.set_weights([rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4) * 0.1])
    head.set_weights([rng.normal(size=(1, 1, 4, 3)), rng.normal(size=3)])
    return model


# ------------------------------------------------------ analytic (GAP + Dense)


@pytest.mark.parametrize("indices", [None, [[0], [2]], [[1, 2], [0, 0]]])
def test_cam_is_activations_times_kernel(gap, indices):
    exposed, x, logits, activations, kernel = gap
    scores, maps = cam(exposed, x, indices)
    full = activations @ kernel  # (B, H', W', K)
    if indices is None:
        close(scores, logits)
        close(maps, full)
    else:
        idx = np.asarray(indices)
        close(scores, np.take_along_axis(logits, idx, axis=1))
        close(maps, np.stack([full[b][..., idx[b]] for b in range(2)]))
    # CAM is exact: the spatial mean of the map plus the bias is the logit.
    bias = exposed.logits_layer.get_weights()[1]
    close(np.asarray(cam(exposed, x)[1]).mean(axis=(1, 2)) + bias, logits)


def test_gradcam_is_cam_over_area(gap):
    exposed, x, _, _, _ = gap
    for indices in (None, [[2], [1]], [[0, 1], [2, 0]]):
        close(gradcam(exposed, x, indices)[1], cam(exposed, x, indices)[1] / 64.0)


def test_layercam_is_positive_weight_cam(gap):
    exposed, x, _, activations, kernel = gap
    expected = activations @ np.maximum(kernel / 64.0, 0.0)
    close(layercam(exposed, x)[1], expected)
    close(layercam(exposed, x, [[1], [1]])[1], expected[..., 1:2])


def paper_gradcampp(logits, activations, g):
    """The paper's (and keras-explainable's) formula, exp(S) included."""
    total = activations.sum(axis=(1, 2))[:, None, None, None, :]
    denominator = 2 * g**2 + total * g**3
    alpha = np.where(denominator != 0, g**2 / np.where(denominator, denominator, 1), 0)
    relu = np.maximum(np.exp(logits)[:, :, None, None, None] * g, 0.0)
    weights = (alpha * relu).sum(axis=(2, 3))  # (B, K, C)
    return np.einsum("bhwc,bkc->bhwk", activations, weights)


def test_gradcampp_matches_formula(gap):
    exposed, x, logits, activations, kernel = gap
    scores, maps = gradcampp(exposed, x)
    g = np.broadcast_to((kernel / 64.0).T[None, :, None, None, :], (2, 3, 8, 8, 4))
    expected = paper_gradcampp(logits, activations, g)
    assert np.isfinite(maps).all()
    close(scores, logits)
    # The paper's maps are ours times exp(S), a positive constant per map.
    close(np.asarray(maps) * np.exp(logits)[:, None, None, :], expected, atol=1e-4)


@pytest.mark.parametrize("shift", [0.0, 80.0, 100.0, 1e4, 1e30])
def test_gradcampp_is_finite_for_any_logit(shift):
    # A bias moves the logits but no gradient: the maps must not change, even
    # where exp(logit) overflows float32 (above ~88.7).
    model = models.gap_dense()
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + shift])
    exposed = expose(model)
    x = images()
    scores, maps = gradcampp(exposed, x)
    assert np.isfinite(maps).all() and np.isfinite(scores).all()
    assert float(np.min(scores)) > shift - 50
    dense.set_weights([kernel, bias])
    close(maps, gradcampp(exposed, x)[1], atol=1e-5)
    if shift < 88:  # where the paper's formula is finite, they agree
        logits, activations = (t.numpy().astype("float64") for t in exposed(x))
        dense.set_weights([kernel, bias + shift])
        logits = exposed(x)[0].numpy().astype("float64")
        g = np.broadcast_to((kernel / 64.0).T[None, :, None, None, :], (2, 3, 8, 8, 4))
        expected = paper_gradcampp(logits, activations, g)
        scale = np.exp(logits)[:, None, None, :]
        np.testing.assert_allclose(np.asarray(maps) * scale, expected, rtol=1e-4)


def test_cam_explicit_logits_layer(gap):
    exposed, x, _, _, _ = gap
    default = cam(exposed, x)[1]
    close(cam(exposed, x, logits_layer="logits")[1], default)
    close(cam(exposed, x, logits_layer=exposed.logits_layer)[1], default)


def test_cam_squeezes_1x1_conv_kernel():
    model = conv_head_model()
    exposed = expose(model, arguments="conv", outputs="flatten")
    x = images()
    logits, activations = (t.numpy() for t in exposed(x))
    kernel = model.get_layer("logits").get_weights()[0][0, 0]
    scores, maps = cam(exposed, x, [[0], [2]], logits_layer="logits")
    close(scores, logits[:, [0, 2]].diagonal()[:, None])
    close(
        maps, np.stack([activations[0] @ kernel[:, :1], activations[1] @ kernel[:, 2:]])
    )
    close(gradcam(exposed, x)[1], (activations @ kernel) / 64.0)


# ----------------------------------------------------------------- contract


def test_names():
    assert [m.__name__ for m in METHODS] == [
        "cam",
        "gradcam",
        "gradcampp",
        "layercam",
        "scorecam",
    ]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_indices_none_gives_every_unit(gap, method):
    exposed, x, logits, _, _ = gap
    scores, maps = method(exposed, x)
    assert scores.shape == (2, 3) and maps.shape == (2, 8, 8, 3)
    assert maps.dtype == tf.float32 and np.isfinite(maps).all()
    close(scores, logits)
    for unit in range(3):
        close(method(exposed, x, [[unit], [unit]])[1], maps[..., unit : unit + 1])
    pairs = method(exposed, x, tf.constant([[2, 0], [1, 1]]))[1]  # L > 1 path
    maps = np.asarray(maps)
    close(pairs, np.stack([maps[0][..., [2, 0]], maps[1][..., [1, 1]]]))


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_batched_equals_single(gap, method):
    exposed = gap[0]
    x = images(batch=3, seed=5)
    indices = np.array([[2], [0], [1]])
    scores, maps = method(exposed, x, indices)
    for b in range(3):
        one_scores, one_maps = method(exposed, x[b : b + 1], indices[b : b + 1])
        close(one_scores, scores[b : b + 1])
        close(one_maps, maps[b : b + 1])


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_eager_function_xla_agree(gap, method):
    exposed, x, _, _, _ = gap
    indices = tf.constant([[1], [2]])
    eager = method(exposed, x, indices)[1]
    graph = tf.function(method)(exposed, x, indices)[1]
    xla = tf.function(method, jit_compile=True)(exposed, x, indices)[1]
    close(graph, eager)
    close(xla, eager)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_nested_backbone_by_path_equals_flat(method):
    nested, flat = nested_and_flat()
    x = images(seed=3)
    indices = np.array([[0], [2]])
    got = method(expose(nested, arguments="backbone/conv2"), x, indices)
    want = method(expose(flat, arguments="conv2"), x, indices)
    assert got[1].shape == want[1].shape
    close(got[0], want[0])
    close(got[1], want[1])
    close(method(expose(nested), x, indices)[1], want[1])  # default: GAP input


# ------------------------------------------------------------------ Score-CAM


def naive_scorecam(exposed, x, indices):
    """Score-CAM written out: one masked image at a time, masks upsampled first."""
    _, activations = exposed(x)
    activations = np.asarray(activations)
    size = x.shape[1:3]
    baseline = np.asarray(exposed(tf.zeros_like(x))[0])
    maps = np.zeros((*x.shape[:3], len(indices[0])), np.float32)
    for b in range(x.shape[0]):
        for k in range(activations.shape[-1]):
            a = activations[b, ..., k]
            span = a.max() - a.min()
            m = (a - a.min()) / span if span else np.zeros_like(a)
            m = np.asarray(tf.image.resize(m[None, ..., None], size))[0]
            s = np.asarray(exposed(x[b : b + 1] * m)[0])[0]
            maps[b] += (s[indices[b]] - baseline[b, indices[b]]) * m
    return maps


def test_scorecam_matches_naive_loop(gap):
    exposed, x, _, _, _ = gap
    indices = [[0, 2], [1, 1]]
    scores, maps = scorecam(exposed, x, indices)
    assert maps.shape == (2, 8, 8, 2)  # the input resolution
    close(maps, naive_scorecam(exposed, x, indices))


def test_scorecam_mass_follows_the_driving_channel():
    model, x = one_channel_model()
    exposed = expose(model)
    assert exposed(x)[1].shape == (1, 8, 8, 2)
    scores, maps = scorecam(exposed, x, [[0, 1]])
    maps = np.asarray(maps)[0]
    assert maps.shape == (16, 16, 2)
    close(maps, naive_scorecam(exposed, x, [[0, 1]])[0])
    red, green = np.maximum(maps[..., 0], 0), np.maximum(maps[..., 1], 0)
    assert red[:8, :8].sum() > 0.95 * red.sum() > 0
    assert green[8:, 8:].sum() > 0.95 * green.sum() > 0
    row, col = np.unravel_index(red.argmax(), red.shape)
    assert row < 6 and col < 6
    # The other channel masks the red square out: it earns exactly nothing.
    close(red[8:, 8:], 0.0)


def test_scorecam_chunking_does_not_change_maps(gap):
    exposed, x, _, _, _ = gap
    indices = [[0], [2]]
    reference = scorecam(exposed, x, indices, batch_size=1)[1]
    for batch_size in (3, 64):
        close(scorecam(exposed, x, indices, batch_size=batch_size)[1], reference)
    graph = tf.function(scorecam)(exposed, x, tf.constant(indices), batch_size=3)
    close(graph[1], reference)


def test_scorecam_max_channels(gap):
    exposed, x, _, activations, _ = gap
    indices = [[1], [0]]
    full = scorecam(exposed, x, indices)[1]
    close(scorecam(exposed, x, indices, max_channels=4)[1], full)
    close(scorecam(exposed, x, indices, max_channels=99)[1], full)
    baseline = np.asarray(exposed(tf.zeros_like(x))[0])
    # max_channels=1 keeps, per sample, the channel with the largest mean, or
    # with rank_by="std" the one that varies most.
    for rank_by, statistic in (("mean", np.mean), ("std", np.std)):
        top = statistic(activations, axis=(1, 2)).argmax(axis=-1)
        one = np.asarray(
            scorecam(exposed, x, indices, max_channels=1, rank_by=rank_by)[1]
        )
        for b in range(2):
            a = activations[b, ..., top[b]]
            m = (a - a.min()) / (a.max() - a.min())
            score = np.asarray(exposed(x[b : b + 1] * m[None, ..., None])[0])[0]
            weight = score[indices[b][0]] - baseline[b, indices[b][0]]
            close(one[b, ..., 0], weight * m)
    with pytest.raises(ValueError, match="`rank_by` must be one of 'mean', 'std'"):
        scorecam(exposed, x, indices, max_channels=1, rank_by="max")


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_model_not_exposed(method):
    with pytest.raises(ValueError, match=r"must be an exposed model.*Received: model="):
        method(models.gap_dense(), images())


def test_cam_without_logits_layer():
    model = models.gap_dense()
    exposed = expose(model, arguments="conv", outputs=Target("conv", reduce="mean"))
    with pytest.raises(ValueError, match=r"has none.*logits_layer=.*Received: model="):
        cam(exposed, images(), [[0], [1]])
    gradcam(exposed, images(), [[0], [1]])  # the gradient methods still work


def test_cam_kernel_does_not_fit_activations():
    nested, _ = nested_and_flat()
    exposed = expose(nested, arguments="backbone/conv1")  # 5 channels, kernel 4
    with pytest.raises(ValueError, match=r"takes 4 inputs.*5 channels.*Received"):
        cam(exposed, images())


def test_cam_kernel_not_dense_like(gap):
    exposed = gap[0]
    conv = exposed.source_model.get_layer("conv")
    with pytest.raises(ValueError, match=r"Dense layer or a 1x1 convolution.*Received"):
        cam(exposed, gap[1], logits_layer=conv)
    with pytest.raises(
        ValueError, match=r"with a kernel.*Received: logits_layer='gap'"
    ):
        cam(exposed, gap[1], logits_layer="gap")
    with pytest.raises(ValueError, match="gapp"):
        cam(exposed, gap[1], logits_layer="gapp")


def test_cam_kernel_units_differ_from_scores():
    model = conv_head_model()
    exposed = expose(model, arguments="conv", outputs=Target("conv", reduce="mean"))
    with pytest.raises(ValueError, match=r"has 3 units.*have 4.*logits_layer='logits'"):
        cam(exposed, images(), logits_layer="logits")


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_bad_spatial_axis(gap, method):
    with pytest.raises(ValueError, match=r"`spatial_axis`.*Received: spatial_axis="):
        method(gap[0], gap[1], spatial_axis=(0, -1))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "`batch_size` must be a positive integer"),
        ({"batch_size": 2.0}, TypeError, "`batch_size` must be an integer"),
        ({"max_channels": 0}, ValueError, "`max_channels` must be a positive"),
        ({"max_channels": "4"}, TypeError, "`max_channels` must be an integer"),
        ({"spatial_axis": (-2,)}, ValueError, r"must be \(-3, -2\)"),
    ],
)
def test_scorecam_bad_arguments(gap, kwargs, error, match):
    with pytest.raises(error, match=match + ".*Received"):
        scorecam(gap[0], gap[1], **kwargs)


def test_scorecam_needs_images(gap):
    with pytest.raises(ValueError, match=r"`inputs` must have shape.*Received"):
        scorecam(gap[0], tf.zeros((2, 8, 3)))


# ------------------------------------- keras-explainable's test, ResNet50V2


@pytest.fixture(scope="module")
def resnet():
    model = models.resnet50v2()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(2, 64, 64, 3)), tf.float32)
    y = rng.integers(10, size=(2, 1))
    return model, expose(model), x, y


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_resnet50v2_explaining(resnet, method):
    model, exposed, x, y = resnet
    kwargs = {"max_channels": 16} if method is scorecam else {}
    logits, maps = method(exposed, x, y, **kwargs)
    assert logits.shape == (2, 1)
    assert maps.shape == ((2, 64, 64, 1) if method is scorecam else (2, 2, 2, 1))
    assert np.isfinite(maps).all()
    close(logits, np.take_along_axis(np.asarray(model(x)), y, axis=1), atol=1e-4)


def test_resnet50v2_hand_exposed_as_keras_explainable(resnet):
    model, exposed, x, y = resnet
    two_outputs = keras.Model(
        model.inputs, [model.output, model.get_layer("avg_pool").input]
    )
    for method in (cam, gradcam):
        close(method(two_outputs, x, y)[1], method(exposed, x, y)[1], atol=1e-4)
