"""Concepts batch through the engine: same numbers as a direct eager computation.

The references here are written without the library's batching: an eager
`tf.GradientTape` over `expose(model, arguments=[layer])`, or a closed form.
On `gap_dense` (`logits = mean_hw(A) @ W + b`, `A` the `conv` activation of
shape 8x8x4) the logit gradient at `conv` is `W[c, k] / 64` at every position,
so the directional derivative along `v` is `sum_{h,w,c} W[c, k] v[h,w,c] / 64`
for every image.
"""

from __future__ import annotations

import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp.concepts import CAV, TrainingImage, directional_derivatives, train_cav
from keras_interp.inspection import expose
from keras_interp.models import KerasModel
from keras_interp.testing.models import gap_dense

SIZE = 8


def _images(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype("f4")


def _two_convs() -> keras.Model:
    """conv1 -> tanh conv2 -> GAP -> Dense: a non-linear head after `conv1`."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    conv1 = keras.layers.Conv2D(3, 3, padding="same", name="conv1")
    conv2 = keras.layers.Conv2D(4, 3, activation="tanh", name="conv2")
    dense = keras.layers.Dense(3, name="logits")
    x = keras.layers.GlobalAveragePooling2D()(conv2(conv1(inputs)))
    model = keras.Model(inputs, dense(x))
    conv1.set_weights([rng.normal(size=(3, 3, 3, 3)), rng.normal(size=3) * 0.1])
    conv2.set_weights([rng.normal(size=(3, 3, 3, 4)) * 0.5, rng.normal(size=4) * 0.1])
    dense.set_weights([rng.normal(size=(4, 3)), rng.normal(size=3)])
    return model


def _eager_gradients(model, layer, images, class_index) -> np.ndarray:
    """`d logit_k / d a` per image, flattened NHWC, by one eager tape."""
    exposed = expose(model, arguments=[layer])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        logits, activations = exposed(x, training=False)
        target = logits[:, class_index]
    grads = tape.gradient(target, activations)
    return grads.numpy().reshape(len(images), -1).astype(np.float64)


def _eager_activations(model, layer, images) -> np.ndarray:
    (out,) = expose(model, arguments=[layer], outputs=[])(images, training=False)
    return np.asarray(out, np.float32).reshape(len(images), -1)


# -- directional derivatives ----------------------------------------------------
def test_directional_derivative_on_gap_dense_is_the_kernel_column_dot_the_cav():
    model = gap_dense()
    kernel = model.get_layer("logits").get_weights()[0]  # (4, 3)
    v = np.random.default_rng(0).normal(size=SIZE * SIZE * 4)
    unit = v / np.linalg.norm(v)
    images = _images(1, 5)
    for class_index in range(3):
        expected = np.tile(kernel[:, class_index], SIZE * SIZE) @ unit / SIZE**2
        for batch_size in (1, 2, 32):
            got = directional_derivatives(
                model, images, "conv", v, class_index, batch_size=batch_size
            )
            assert got.dtype == np.float64 and got.shape == (5,)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_directional_derivative_matches_an_eager_tape(batch_size):
    model = _two_convs()
    images = _images(2, 7)
    v = np.random.default_rng(3).normal(size=SIZE * SIZE * 3)
    for class_index in (0, 2):
        expected = _eager_gradients(model, "conv1", images, class_index) @ (
            v / np.linalg.norm(v)
        )
        got = directional_derivatives(
            KerasModel(model), images, "conv1", v, class_index, batch_size=batch_size
        )
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # images given one by one (each prepared by the model) agree with the batch
    as_list = directional_derivatives(model, list(images), "conv1", v, 2)
    np.testing.assert_allclose(as_list, expected, rtol=1e-5, atol=1e-6)


def _frozen_with_a_side_node():
    """A frozen graph whose node `side` does not reach the logits."""
    from keras_interp.models.frozen import FrozenGraphModel

    @tf.function
    def graph(x):
        tf.identity(x * 2.0, name="side")
        features = tf.identity(tf.nn.avg_pool2d(x, 2, 2, "VALID"), name="features")
        red = tf.reduce_sum(tf.nn.softplus(features[..., 0]), [1, 2])
        return tf.identity(tf.stack([-red, red], axis=-1), name="logits")

    spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="input")
    graph_def = graph.get_concrete_function(spec).graph.as_graph_def()
    return FrozenGraphModel(
        graph_def, output_names=["features", "side"], logits_name="logits"
    )


def test_frozen_graph_derivative_is_the_closed_form_and_a_dead_layer_is_refused():
    frozen = _frozen_with_a_side_node()
    images = _images(4, 3)
    v = np.random.default_rng(5).normal(size=4 * 4 * 3)
    features = images.reshape(3, 4, 2, 4, 2, 3).mean(axis=(2, 4))  # (3, 4, 4, 3)
    grads = np.zeros_like(features)
    grads[..., 0] = 1 / (1 + np.exp(-features[..., 0]))  # softplus'
    expected = grads.reshape(3, -1) @ (v / np.linalg.norm(v))
    got = directional_derivatives(frozen, images, "features", v, 1, batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    side = np.ones(SIZE * SIZE * 3)
    with pytest.raises(ValueError, match="do not depend on layer 'side'") as info:
        directional_derivatives(frozen, images, "side", side, 1)
    assert "Received:" in str(info.value)


# -- activations ----------------------------------------------------------------
def test_training_activations_match_the_layer_output():
    model = _two_convs()
    positives, negatives = _images(6, 5), _images(7, 4) * 0.5
    items = [TrainingImage(im) for im in positives]
    pair = (KerasModel(model), "conv1")
    cav = train_cav(
        positive_images=items,
        negative_images=list(negatives),
        model_layer=pair,
        seed=0,
        batch_size=2,
    )
    cached = np.stack([item.activations_for_model_layer(pair) for item in items])
    np.testing.assert_allclose(
        cached, _eager_activations(model, "conv1", positives), rtol=1e-5, atol=1e-6
    )
    # scores are cosines with the same activations
    acts = _eager_activations(model, "conv1", negatives).astype(np.float64)
    expected = acts @ cav.vector / np.linalg.norm(acts, axis=1)
    for batch_size in (1, 3):
        scores = cav.scores(list(negatives), batch_size=batch_size, verbose=0)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_tcav_activations_of_a_prepared_batch_match_the_layer_output():
    from keras_interp.concepts.significance import _activations

    model = KerasModel(_two_convs())
    images = _images(8, 5)
    expected = _eager_activations(model.keras_model, "conv1", images)
    for batch_size in (2, 5):
        for given in (images, list(images)):
            got = _activations(model, given, "conv1", 192, batch_size, 0, "x")
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_cav_on_a_raw_keras_model_scores_like_its_keras_model_wrapper():
    model = _two_convs()
    v = np.random.default_rng(9).normal(size=SIZE * SIZE * 3)
    cav = CAV(uuid.uuid4(), v / np.linalg.norm(v), (model, "conv1"))
    images = _images(10, 3)
    acts = _eager_activations(model, "conv1", images).astype(np.float64)
    np.testing.assert_allclose(
        cav.scores(list(images)),
        acts @ cav.vector / np.linalg.norm(acts, axis=1),
        rtol=1e-5,
    )


# -- the engine runs it: one trace across calls and batch sizes -------------------
def test_directional_derivatives_are_compiled_once_by_the_engine(monkeypatch):
    from keras_interp.concepts import _batching

    calls = {"explain": 0, "differentiate": 0}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(_batching, name, wrapped)

    spy("explain", _batching.explain)
    spy("differentiate", _batching.differentiate)
    model, images = gap_dense(seed=4), _images(11, 7)
    v = np.random.default_rng(12).normal(size=SIZE * SIZE * 4)
    first = [
        directional_derivatives(model, images, "conv", v, k % 3, batch_size=size)
        for k, size in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9])
    ]
    call = _batching.layer_call(KerasModel(model), "conv", logits=True)
    function = _batching.gradient_function(call, "conv")
    traces = function.experimental_get_tracing_count()
    assert 1 <= traces <= 3  # the engine's rule: batch sizes relax the shape
    assert calls["explain"] == 9 and calls["differentiate"] == traces
    again = directional_derivatives(model, images, "conv", v, 0, batch_size=2)
    assert function.experimental_get_tracing_count() == traces
    np.testing.assert_allclose(again, first[0], rtol=1e-6)


def test_activations_are_compiled_once_by_the_engine():
    from keras_interp.concepts import _batching

    model = _two_convs()
    v = np.random.default_rng(13).normal(size=SIZE * SIZE * 3)
    cav = CAV(uuid.uuid4(), v / np.linalg.norm(v), (model, "conv1"))
    images = list(_images(14, 6))
    scores = [cav.scores(images, batch_size=size) for size in (1, 2, 4, 5, 6, 3)]
    call = _batching.layer_call(KerasModel(model), "conv1", logits=False)
    function = _batching.compiled_function(
        _batching.activation_rows, call, postprocessing=None, resizing=False
    )
    assert 1 <= function.experimental_get_tracing_count() <= 3
    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], rtol=1e-6)


def test_the_engine_cache_does_not_keep_models_alive():
    import gc
    import weakref

    model = gap_dense(seed=6)
    wrapped = KerasModel(model)
    directional_derivatives(wrapped, _images(15, 2), "conv", np.ones(256), 1)
    refs = [weakref.ref(model), weakref.ref(wrapped)]
    frozen = _frozen_with_a_side_node()
    directional_derivatives(frozen, _images(16, 2), "features", np.ones(48), 1)
    refs.append(weakref.ref(frozen))
    del model, wrapped, frozen
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
