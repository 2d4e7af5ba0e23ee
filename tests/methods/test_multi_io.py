"""Models with several outputs (one head chosen, by index or name, alike for
every method) and several inputs (one map per input)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_interp import methods
from keras_interp.engine import explain
from keras_interp.inspection import Target, expose
from keras_interp.inspection.expose import select_output
from keras_interp.shortcuts import prepare

# Several outputs: a shared conv trunk, head "a" Dense(3), head "b" Dense(2)
# with a softmax (explained before it, as the logits of a one-head model).

HEADS = {"a": (0, 3), "b": (1, 2)}  # name -> (index, units)


def _two_heads(framework=keras, dict_outputs=False):
    k = framework
    inputs = k.Input((8, 8, 3), name="images")
    x = k.layers.Conv2D(4, 3, padding="same", activation="tanh", name="trunk")(inputs)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    a = k.layers.Dense(3, name="a")(x)
    b = k.layers.Dense(2, activation="softmax", name="b")(x)
    outputs = {"first": a, "second": b} if dict_outputs else [a, b]
    two = k.Model(inputs, outputs, name="two_heads")
    singles = {"a": k.Model(inputs, a, name="only_a"), "b": k.Model(inputs, b)}
    return two, singles


@pytest.fixture(scope="module")
def heads():
    keras.utils.set_random_seed(0)
    return _two_heads()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")


def _y(units):
    return np.array([0, units - 1, 1])


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("by", ["index", "name"])
def test_cam_explains_the_chosen_head(heads, x, head, by):
    two, singles = heads
    index, units = HEADS[head]
    chosen = expose(two, outputs=Target(output=index if by == "index" else head))
    y = _y(units)
    for name in ("gradcam",):  # every method: tests/methods/test_contract_axes.py
        got = explain(name, chosen, x, y, verbose=0)
        want = explain(name, prepare(singles[head], name), x, y, verbose=0)
        np.testing.assert_allclose(got[0], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        assert np.abs(want[1]).max() > 1e-4  # not trivially zero


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("by", ["index", "name"])
def test_gradients_explain_the_chosen_head(heads, x, head, by):
    two, singles = heads
    index, units = HEADS[head]
    chosen = select_output(two, index if by == "index" else head)
    y = _y(units)
    # The head's pre-activation scores, as `expose` gives for one head.
    logits_only = expose(singles[head], arguments=[])
    for name in ("gradients",):  # every method: tests/methods/test_contract_axes.py
        got = explain(name, chosen, x, y, verbose=0)
        want = explain(name, logits_only, x, y, verbose=0)
        np.testing.assert_allclose(got[0], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
        assert np.abs(want[1]).max() > 1e-6


def test_a_linear_head_equals_the_plain_single_head_model(heads, x):
    two, singles = heads
    got = explain("gradients", select_output(two, "a"), x, _y(3), verbose=0)
    want = explain("gradients", singles["a"], x, _y(3), verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def test_heads_differ(heads, x):
    """Each head is really selected (the two give different maps)."""
    two, _ = heads
    first = explain("gradcam", expose(two, outputs=Target(output=0)), x, [0, 1, 1])
    second = explain("gradcam", expose(two, outputs=Target(output=1)), x, [0, 1, 1])
    assert np.abs(first[1] - second[1]).max() > 1e-4


def test_dict_outputs_by_key_and_layer_name(x):
    keras.utils.set_random_seed(1)
    two, singles = _two_heads(dict_outputs=True)
    want = explain("gradcam", prepare(singles["b"], "gradcam"), x, _y(2), verbose=0)
    for ref in ("second", "b"):
        chosen = expose(two, outputs=Target(output=ref))
        got = explain("gradcam", chosen, x, _y(2), verbose=0)
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_tf_keras_two_heads(x):
    tf_keras.utils.set_random_seed(2)
    two, singles = _two_heads(tf_keras)
    want = explain("gradcam", prepare(singles["a"], "gradcam"), x, _y(3), verbose=0)
    chosen = expose(two, outputs=Target(output="a"))
    got = explain("gradcam", chosen, x, _y(3), verbose=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_output_errors(heads):
    two, _ = heads
    with pytest.raises(ValueError, match=r"no output 'c'.*0: 'a'.*output='c'"):
        expose(two, outputs=Target(output="c"))
    with pytest.raises(ValueError, match="no output 2.*Received: output=2"):
        select_output(two, 2)
    with pytest.raises(ValueError, match="`layer` or `output`, not both"):
        Target("gap", output=0)
    with pytest.raises(TypeError, match="Received: output=1.5"):
        Target(output=1.5)
    with pytest.raises(ValueError, match=r"2 outputs.*Target\(output=.*model="):
        expose(two)
    for name in ("gradients", "gradcam", "rise"):  # no silent choice
        with pytest.raises(ValueError, match=r"2 outputs \(0: 'a', 1: 'b'\)"):
            explain(name, two, np.zeros((1, 8, 8, 3), "float32"), verbose=0)


# Several inputs: `logits = flatten(image) @ A + vector @ B + flatten(small) @ C`,
# linear, so the gradient w.r.t. each input is its kernel.


@pytest.fixture(scope="module")
def three_inputs():
    rng = np.random.default_rng(0)
    image = keras.Input((6, 6, 2), name="image")
    vector = keras.Input((4,), name="vector")
    small = keras.Input((3, 3, 1), name="small")
    dense = {n: keras.layers.Dense(3, use_bias=False, name=n) for n in "abc"}
    flat = keras.layers.Flatten()
    logits = keras.layers.Add(name="sum")(
        [dense["a"](flat(image)), dense["b"](vector), dense["c"](flat(small))]
    )
    model = keras.Model([image, vector, small], logits, name="three")
    kernels = {
        "a": rng.normal(size=(72, 3)),
        "b": rng.normal(size=(4, 3)),
        "c": rng.normal(size=(9, 3)),
    }
    for n, kernel in kernels.items():
        dense[n].set_weights([kernel.astype("float32")])
    x = (
        rng.normal(size=(5, 6, 6, 2)).astype("float32"),
        rng.normal(size=(5, 4)).astype("float32"),
        rng.normal(size=(5, 3, 3, 1)).astype("float32"),
    )
    return model, kernels, x


def _expected(kernels, x, y, times_input):
    """The analytic maps of unit `y[b]`: channel mean of the kernel (gradients)
    or channel sum of input x kernel (input x gradient, IG from zero)."""
    a = kernels["a"].reshape(6, 6, 2, 3)[..., y].transpose(3, 0, 1, 2)
    b = kernels["b"][:, y].T
    c = kernels["c"].reshape(3, 3, 1, 3)[..., y].transpose(3, 0, 1, 2)
    if times_input:
        return (
            (a * x[0]).sum(-1)[..., None],
            (b * x[1])[..., None],
            (c * x[2]).sum(-1)[..., None],
        )
    return a.mean(-1)[..., None], b[..., None], c.mean(-1)[..., None]


@pytest.mark.parametrize(
    "name, options, times_input",
    [
        ("gradients", {"gradient_filter": None}, False),
        ("guided_gradients", {"gradient_filter": None}, False),
        ("input_x_gradient", {}, True),
        ("integrated_gradients", {"steps": 3}, True),
    ],
)
def test_one_map_per_input_equals_the_analytic_gradient(
    three_inputs, name, options, times_input
):
    model, kernels, x = three_inputs
    y = np.array([0, 2, 1, 1, 0])
    logits, maps = explain(name, model, x, y, batch_size=2, verbose=0, **options)
    assert isinstance(maps, tuple) and len(maps) == 3
    assert [m.shape for m in maps] == [(5, 6, 6, 1), (5, 4, 1), (5, 3, 3, 1)]
    np.testing.assert_allclose(
        logits[:, 0], model(list(x)).numpy()[range(5), y], atol=1e-5
    )
    for got, want in zip(maps, _expected(kernels, x, y, times_input)):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_dict_inputs_give_a_dict_of_maps(three_inputs):
    model, kernels, x = three_inputs
    named = dict(zip(("image", "vector", "small"), x))
    y = np.array([1, 0, 2, 2, 1])
    _, maps = explain("input_x_gradient", model, named, y, verbose=0)
    assert sorted(maps) == ["image", "small", "vector"]
    want = _expected(kernels, x, y, True)
    np.testing.assert_allclose(maps["image"], want[0], atol=1e-4)
    np.testing.assert_allclose(maps["vector"], want[1], atol=1e-4)
    np.testing.assert_allclose(maps["small"], want[2], atol=1e-4)


def test_image_maps_are_postprocessed_and_resized_each_to_its_input(three_inputs):
    model, kernels, x = three_inputs
    y = np.zeros(5, int)

    def doubled(maps, axis):
        return 2 * maps

    _, maps = explain(
        "gradients",
        model,
        x,
        y,
        postprocessing=doubled,
        resizing=(2, 2),
        verbose=0,
        gradient_filter=None,
    )
    assert [m.shape for m in maps] == [(5, 2, 2, 1), (5, 4, 1), (5, 2, 2, 1)]
    want = _expected(kernels, x, y, False)
    np.testing.assert_allclose(maps[1], want[1], atol=1e-5)  # not post-processed
    _, full = explain("gradients", model, x, y, verbose=0, gradient_filter=None)
    assert full[0].shape == (5, 6, 6, 1) and full[2].shape == (5, 3, 3, 1)


def _two_image_cam_model() -> keras.Model:
    """Two 8x8 RGB images concatenated, one conv ("conv"), GAP, Dense(2)."""
    left, right = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    both = keras.layers.Concatenate(name="cat")([left, right])
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(both)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    return keras.Model([left, right], keras.layers.Dense(2, name="logits")(pooled))


def test_cam_on_two_image_inputs_gives_one_map():
    keras.utils.set_random_seed(3)
    model = _two_image_cam_model()
    x = np.random.default_rng(0).normal(size=(2, 2, 8, 8, 3)).astype("float32")
    _, maps = explain("gradcam", model, (x[0], x[1]), [0, 1], verbose=0)
    assert maps.shape == (2, 8, 8, 1)
    # The same as grad-CAM by hand on the exposed activations.
    exposed = expose(model, arguments="conv")
    with tf.GradientTape() as tape:
        logits, acts = exposed([x[0], x[1]])
        chosen = tf.gather(logits, [[0], [1]], batch_dims=1)
    grads = tape.gradient(chosen, acts)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    want = tf.reduce_sum(weights * acts, -1, keepdims=True)  # unnormalised
    np.testing.assert_allclose(maps, want.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["occlusion", "rise"])
def test_perturbation_methods_refuse_several_inputs(three_inputs, name):
    model, _, x = three_inputs
    with pytest.raises(ValueError, match="single image input.*Received: inputs="):
        explain(name, model, x, verbose=0)


# Meta wrappers on several inputs: the nest of maps (or the one CAM map) of the
# wrapped method. `logits = flatten(image) @ A + vector @ B`, linear, so every
# noisy or augmented pass has the same gradient.


@pytest.fixture(scope="module")
def image_and_vector():
    rng = np.random.default_rng(1)
    image = keras.Input((6, 6, 2), name="image")
    vector = keras.Input((3,), name="vector")
    dense_a = keras.layers.Dense(2, use_bias=False)
    dense_b = keras.layers.Dense(2, use_bias=False)
    logits = keras.layers.Add()(
        [dense_a(keras.layers.Flatten()(image)), dense_b(vector)]
    )
    model = keras.Model([image, vector], logits)
    kernel_a = rng.normal(size=(72, 2)).astype("float32")
    kernel_b = rng.normal(size=(3, 2)).astype("float32")
    dense_a.set_weights([kernel_a]), dense_b.set_weights([kernel_b])
    x = (
        rng.normal(size=(4, 6, 6, 2)).astype("float32"),
        rng.normal(size=(4, 3)).astype("float32"),
    )
    # The analytic gradient maps of unit y[b]: channel mean of A, and B.
    y = np.array([[0], [1], [1], [0]])
    want = (
        kernel_a.reshape(6, 6, 2, 2)
        .mean(2)[..., y[:, 0]]
        .transpose(2, 0, 1)[..., None],
        kernel_b[:, y[:, 0]].T[..., None],
    )
    return model, x, y, want


def _wrapped_laws():
    return {
        "smooth_noise0": methods.smooth(methods.gradients, repetitions=3, noise=0.0),
        # batch_size=4 (the batch): one copy per call, three calls.
        "smooth_chunked": methods.smooth(
            methods.gradients, repetitions=3, noise=0.0, batch_size=4
        ),
        # Noise moves the inputs, not the (constant) gradient.
        "smooth_noisy": methods.smooth(
            methods.gradients, repetitions=3, noise=0.5, seed=0, batch_size=4
        ),
        "tta_identity": methods.tta(methods.gradients, scales=(1.0,), hflip=False),
    }


@pytest.mark.parametrize("name", sorted(_wrapped_laws()))
@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_wrappers_on_several_inputs_give_the_nest_of_maps(image_and_vector, name, kind):
    model, x, y, want = image_and_vector
    wrapped = _wrapped_laws()[name]
    inputs = tuple(map(tf.constant, x))
    if kind == "dict":
        model = keras.Model(
            {"image": model.inputs[0], "vector": model.inputs[1]}, model.outputs[0]
        )
        inputs, want = (
            dict(zip(("image", "vector"), inputs)),
            dict(zip(("image", "vector"), want)),
        )
    logits, maps = wrapped(model, inputs, tf.constant(y), gradient_filter=None)
    plain_logits, plain = methods.gradients(model, inputs, y, gradient_filter=None)
    assert type(maps) is type(plain)
    for got, expected in zip(tf.nest.flatten(maps), tf.nest.flatten(want)):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    if name != "smooth_noisy":
        np.testing.assert_allclose(logits, plain_logits, atol=1e-5)
    else:  # the noise reached the inputs
        assert np.abs(logits - plain_logits).max() > 1e-2


def test_tta_mirrors_image_inputs_and_passes_vectors_through(image_and_vector):
    model, x, y, want = image_and_vector
    logits, maps = methods.tta(methods.gradients, scales=(), hflip=True)(
        model, tuple(map(tf.constant, x)), y, gradient_filter=None
    )
    # The mirrored pass's image gradient, mirrored back, is A mirrored.
    np.testing.assert_allclose(maps[0], (want[0] + want[0][:, :, ::-1]) / 2, atol=1e-6)
    np.testing.assert_allclose(maps[1], want[1], atol=1e-6)
    mirrored = model([x[0][:, :, ::-1], x[1]]).numpy()[range(4), y[:, 0]]
    plain = model(list(x)).numpy()[range(4), y[:, 0]]
    np.testing.assert_allclose(logits[:, 0], (plain + mirrored) / 2, atol=1e-5)


def test_smooth_noises_every_float_input_and_copies_the_others():
    def identity_maps(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        maps = tuple(tf.cast(t, tf.float32)[..., None] for t in inputs)
        return tf.zeros((tf.shape(inputs[0])[0], 1)), maps

    x = (
        tf.ones((2, 4, 4, 1)),
        tf.ones((2, 3)),  # the same content: still its own noise
        tf.constant([[1, 2], [3, 4]]),  # integer ids: unchanged
    )
    wrapped = methods.vargrad(identity_maps, repetitions=6, noise=0.5, seed=0)
    _, variances = wrapped(None, x)
    assert variances[0].numpy().min() > 0 and variances[1].numpy().min() > 0
    assert not np.allclose(variances[0].numpy()[:, 0, :3, 0], variances[1].numpy())
    np.testing.assert_array_equal(variances[2], 0.0)
    again = tf.function(lambda x: wrapped(None, x))(x)[1]
    for a, b in zip(variances, again):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kind", ["smooth", "tta"])
def test_cam_wrappers_on_two_image_inputs_give_one_map(kind):
    keras.utils.set_random_seed(4)
    model = _two_image_cam_model()
    x = np.random.default_rng(0).normal(size=(2, 2, 8, 8, 3)).astype("float32")
    wrapped = (
        methods.smooth(methods.gradcam, repetitions=3, noise=0.0, batch_size=2)
        if kind == "smooth"
        else methods.tta(methods.gradcam, scales=(1.0,), hflip=False)
    )
    got = explain(wrapped, model, (x[0], x[1]), [0, 1], verbose=0)
    want = explain("gradcam", model, (x[0], x[1]), [0, 1], verbose=0)
    assert got[1].shape == want[1].shape == (2, 8, 8, 1)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    assert np.abs(want[1]).max() > 1e-3


def test_explain_batches_a_wrapped_method_over_several_inputs(image_and_vector):
    model, x, y, want = image_and_vector
    wrapped = methods.smooth(methods.gradients, repetitions=4, noise=0.3, seed=0)
    _, maps = explain(
        wrapped, model, x, y, batch_size=3, verbose=0, gradient_filter=None
    )
    assert isinstance(maps, tuple)
    np.testing.assert_allclose(maps[0], want[0], atol=1e-5)
    np.testing.assert_allclose(maps[1], want[1], atol=1e-5)
