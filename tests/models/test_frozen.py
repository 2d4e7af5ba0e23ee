"""FrozenGraphModel: any frozen GraphDef, checked against the Keras model it
was frozen from, and with the attribution methods."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from keras_interp import explain, methods
from keras_interp.inspection import expose
from keras_interp.models import FrozenFunction, FrozenGraphModel, load_graph_def


@pytest.fixture(scope="module")
def keras_net():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="dense"),
        ]
    )


@pytest.fixture(scope="module")
def frozen_pb(keras_net, tmp_path_factory):
    """The Keras model frozen by the test (variables -> constants), as a .pb."""
    spec = tf.TensorSpec([None, 32, 32, 3], tf.float32, name="input")
    function = tf.function(lambda x: keras_net(x, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    path = tmp_path_factory.mktemp("frozen") / "net.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


CONV, CONV2 = r"/conv(_\d+)?/Relu$", r"/conv2(_\d+)?/Relu$"


def node(path, pattern: str) -> str:
    """The graph's node whose name matches `pattern` (Keras adds suffixes)."""
    names = [n.name for n in load_graph_def(path).node]
    (found,) = [n for n in names if re.search(pattern, n)]
    return found


@pytest.fixture(scope="module")
def frozen(frozen_pb):
    return FrozenGraphModel(
        frozen_pb,
        output_names=[
            node(frozen_pb, CONV),
            node(frozen_pb, CONV2),
        ],
        logits_name="Identity",
    )


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)


# ---------------------------------------------------- correctness vs Keras
def test_identical_to_the_keras_model(keras_net, frozen, frozen_pb, images):
    conv, conv2 = node(frozen_pb, CONV), node(frozen_pb, CONV2)
    inner = keras.Model(keras_net.inputs[0], keras_net.get_layer("conv").output)
    relu, relu2 = frozen.layer_outputs(tf.constant(images), [conv, conv2])
    np.testing.assert_allclose(relu, inner(images), rtol=1e-5, atol=1e-6)
    assert relu2.shape == (3, 13, 13, 16)
    np.testing.assert_allclose(frozen.logits(images), keras_net(images), atol=1e-6)
    flat = frozen.get_activation_for_image(images[0], conv)
    np.testing.assert_allclose(flat, np.reshape(inner(images[:1]), -1), atol=1e-6)
    assert frozen.image_size == 32  # read from the input's declared shape
    assert conv2 in FrozenGraphModel(frozen_pb).output_layer_names  # default: all


def test_gradients_equal_keras(keras_net, frozen, frozen_pb, images):
    conv = node(frozen_pb, CONV)
    ours = methods.gradients(frozen.exposed(), images, [[1], [2], [3]])
    theirs = methods.gradients(keras_net, images, [[1], [2], [3]])
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-5)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-7)
    ours = methods.gradcam(frozen.exposed(conv), images, [[1], [2], [3]])
    theirs = methods.gradcam(
        expose(keras_net, arguments=["conv"]), images, [[1], [2], [3]]
    )
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-6)
    assert ours[1].shape == (3, 30, 30, 1)


def test_logits_and_layer_on_the_callers_tape(frozen, frozen_pb, images):
    conv = node(frozen_pb, CONV)
    x = tf.constant(images)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits, activations = frozen.logits_and_layer(x, conv)
        score = tf.reduce_sum(logits[:, 4])
    assert logits.shape == (3, 10) and activations.shape == (3, 30, 30, 8)
    d_activations = tape.gradient(score, activations)
    d_x = tape.gradient(score, x)
    assert float(tf.reduce_max(tf.abs(d_activations))) > 0
    # The chain rule through the head: d score / dx == (d act / dx)^T d score / d act.
    chained = tape.gradient(activations, x, output_gradients=d_activations)
    np.testing.assert_allclose(d_x, chained, rtol=1e-4, atol=1e-7)


def test_compiled_equals_eager(frozen, frozen_pb, images):
    conv = node(frozen_pb, CONV)
    exposed = frozen.exposed(conv)
    eager = methods.gradcam(exposed, images, [[0], [1], [2]])
    compiled = tf.function(lambda x: methods.gradcam(exposed, x, [[0], [1], [2]]))
    np.testing.assert_allclose(compiled(images)[1], eager[1], rtol=1e-5, atol=1e-7)
    y = np.array([[0], [1], [2]])
    logits, maps = explain(methods.gradcam, exposed, images, y, batch_size=2, verbose=0)
    assert maps.shape == (3, 32, 32, 1)  # resized to the images by the engine
    np.testing.assert_allclose(logits, eager[0], rtol=1e-5, atol=1e-6)


def test_exposed_scales_inputs(googlenet):
    pixels = np.random.default_rng(2).random((1, 224, 224, 3), dtype=np.float32)
    scaled = googlenet.exposed("mixed4d")(pixels)
    raw = googlenet.exposed("mixed4d", scale_inputs=False)(pixels * 255 - 117)
    for a, b in zip(scaled, raw):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert isinstance(googlenet.exposed(), FrozenFunction)
    assert "mixed4d" in repr(googlenet.exposed("mixed4d"))


# ------------------------------------------------------------ image sizes
def test_variable_image_size(googlenet_pb):
    model = FrozenGraphModel(googlenet_pb, output_names=["mixed4d", "mixed5b"])
    assert model.variable_size and model.image_size == 224
    x = tf.zeros((2, 256, 320, 3))
    mixed4d, mixed5b = model.layer_outputs(x, ["mixed4d", "mixed5b"])
    assert mixed4d.shape == (2, 16, 20, 528) and mixed5b.shape == (2, 8, 10, 1024)
    assert model.layer_outputs(tf.zeros((1, 224, 224, 3)), ["mixed4d"])[0].shape == (
        1, 14, 14, 528,
    )  # fmt: skip


def test_batches(googlenet, photo_path):
    images = [photo_path] * 5
    batched = googlenet.activations(images, "mixed5b", batch_size=2, verbose=0)
    single = googlenet.get_activation_for_image(photo_path, "mixed5b")
    assert batched.shape == (5, 50_176)
    np.testing.assert_allclose(batched, np.tile(single, (5, 1)), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ errors
def test_unknown_layer_suggests_names(googlenet_pb):
    model = FrozenGraphModel(googlenet_pb, logits_name="softmax2_pre_activation")
    with pytest.raises(ValueError, match=r"Unknown layer name 'mixed4x'.*mixed4"):
        model.get_activation_for_image(np.zeros((224, 224, 3)), "mixed4x")
    with pytest.raises(ValueError, match=r"Unknown layer.*Received: layer_name="):
        model.exposed("nope")


def test_bad_nodes(googlenet_pb):
    with pytest.raises(ValueError, match=r"`input_name` must name a node.*'inptu'"):
        FrozenGraphModel(googlenet_pb, input_name="inptu")
    with pytest.raises(ValueError, match=r"`output_names`.*Closest names: mixed4d"):
        FrozenGraphModel(googlenet_pb, output_names=["mixed4dd"])
    with pytest.raises(ValueError, match="`logits_name` must name a node"):
        FrozenGraphModel(googlenet_pb, logits_name="logits")
    model = FrozenGraphModel(googlenet_pb, input_name="input:0", output_names="mixed3a")
    assert model.output_layer_names == ["mixed3a"]
    with pytest.raises(ValueError, match="no logits: pass `logits_name=`"):
        model.exposed()


def test_bad_files(tmp_path, frozen_pb):
    with pytest.raises(FileNotFoundError, match="`model_path` must name an existing"):
        FrozenGraphModel(tmp_path / "missing.pb")
    with pytest.raises(ValueError, match="not a directory.*load_saved_model"):
        FrozenGraphModel(tmp_path)
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xfe not a protocol buffer \x00\x01")
    with pytest.raises(ValueError, match="not a frozen GraphDef"):
        FrozenGraphModel(garbage)
    with pytest.raises(TypeError, match="Received: model_path=3"):
        FrozenGraphModel(3)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.Variable(1.0, name="w")
    with pytest.raises(ValueError, match="with variables.*freeze it first"):
        FrozenGraphModel(graph.as_graph_def())
    model = FrozenGraphModel(frozen_pb.read_bytes(), logits_name="Identity")
    assert model.name == "frozen_graph" and model.model_path is None
