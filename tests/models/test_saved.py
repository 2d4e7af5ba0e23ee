"""SavedModels and TF-Hub models through `load_saved_model`: written by the
tests (a `tf.Module` and a Keras export), nothing downloaded."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_interp import methods
from keras_interp.inspection import expose
from keras_interp.models import FrozenGraphModel, freeze_function, load_saved_model


class Net(tf.Module):
    """`logits = mean_hw(relu(conv1x1(x, w))) @ v`: Grad-CAM's weights are
    `v[:, k] / (H * W)`, so its maps are `features @ v[:, k] / (H * W)`."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal((1, 1, 3, 6), (1, 2)))
        self.v = tf.Variable(tf.random.stateless_normal((6, 4), (1, 3)))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, x):
        return self.head(self.features(x))

    def features(self, x):
        return tf.nn.relu(tf.nn.conv2d(x, self.w, 1, "SAME"), name="features")

    def head(self, features):
        return tf.matmul(tf.reduce_mean(features, [1, 2]), self.v, name="logits")

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def both(self, x):
        return {"scores": self.head(self.features(x)), "probs": tf.nn.softmax(x)}


@pytest.fixture(scope="module")
def net():
    return Net()


@pytest.fixture(scope="module")
def saved_dir(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "net"
    signatures = {"serving_default": net.__call__, "both": net.both}
    tf.saved_model.save(net, str(path), signatures=signatures)
    return path


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)


def features_node(model: FrozenGraphModel) -> str:
    names = model.output_layer_names
    (name,) = [n for n in names if n.split("/")[-1] == "features"]
    return name


def test_directory_gives_the_module_outputs_and_gradients(net, saved_dir, images):
    model = load_saved_model(saved_dir)
    assert isinstance(model, FrozenGraphModel) and model.variable_size
    np.testing.assert_allclose(model.exposed()(images), net(images), atol=1e-6)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = net(x)[:, 2]
    expected = tf.reduce_mean(tf.abs(tape.gradient(score, x)), -1)
    _, maps = methods.gradients(model.exposed(), images, [[2], [2]])
    np.testing.assert_allclose(maps[..., 0], expected, rtol=1e-5, atol=1e-7)


def test_gradcam_on_an_inner_op(net, saved_dir, images):
    model = load_saved_model(saved_dir, image_size=8)
    layer = features_node(model)
    scores, maps = methods.gradcam(model.exposed(layer), images, [[1], [3]])
    features = net.features(images).numpy()
    kernel = net.v.numpy()
    expected = np.stack([features[0] @ kernel[:, 1], features[1] @ kernel[:, 3]])
    expected /= 8 * 8
    np.testing.assert_allclose(maps[..., 0], expected, rtol=1e-5, atol=1e-6)
    flat = model.get_activation_for_image(images[0], layer)
    np.testing.assert_allclose(flat, np.reshape(features[0], -1), atol=1e-6)


def test_signature_and_output_key(net, saved_dir, images):
    model = load_saved_model(saved_dir, signature="both", output_key="scores")
    assert set(model.outputs) == {"scores", "probs"} and model.image_size == 8
    np.testing.assert_allclose(model.exposed()(images), net(images), atol=1e-6)
    with pytest.raises(ValueError, match=r"`output_key` must be one of.*'probs'"):
        load_saved_model(saved_dir, signature="both")
    with pytest.raises(ValueError, match=r"`signature` must be one of \['both'"):
        load_saved_model(saved_dir, signature="serve")


def test_loaded_objects_functions_and_hub_layers(net, saved_dir, images):
    import tensorflow_hub as hub

    loaded = tf.saved_model.load(str(saved_dir))
    for handle in (loaded, hub.KerasLayer(str(saved_dir)), net.__call__, loaded.both):
        key = "scores" if handle is loaded.both else None
        model = load_saved_model(handle, output_key=key)
        np.testing.assert_allclose(model.exposed()(images), net(images), atol=1e-6)
    spec = tf.TensorSpec([None, 8, 8, 3], tf.float32, name="input")
    function = tf.function(lambda x: net(x)).get_concrete_function(spec)
    graph_def, inputs, outputs = freeze_function(function)
    assert inputs == ["input:0"] and isinstance(outputs, str)
    assert FrozenGraphModel(graph_def, logits_name=outputs).image_size == 8


def test_keras_export(tmp_path, images):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    pooled = keras.layers.GlobalAveragePooling2D()(hidden(inputs))
    network = keras.Model(inputs, keras.layers.Dense(5)(pooled))
    network.export(str(tmp_path / "export"), verbose=False)
    model = load_saved_model(tmp_path / "export")
    np.testing.assert_allclose(model.exposed()(images), network(images), atol=1e-5)
    (layer,) = [n for n in model.output_layer_names if n.endswith("conv_1/Relu")]
    ours = methods.gradcam(model.exposed(layer), images, [[0], [4]])
    theirs = methods.gradcam(expose(network, arguments=["conv"]), images, [[0], [4]])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-6)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="existing SavedModel directory"):
        load_saved_model(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="holds no saved_model.pb") as info:
        load_saved_model(tmp_path / "plain")
    assert f"Received: handle='{tmp_path / 'plain'}'" in str(info.value)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "saved_model.pb").write_bytes(b"\x00\x01 not a proto")
    with pytest.raises(ValueError, match="Could not load the SavedModel at") as info:
        load_saved_model(str(tmp_path / "corrupt"))
    assert str(tmp_path / "corrupt") in str(info.value)
    assert info.value.__cause__ is not None  # TensorFlow's error, chained
    (tmp_path / "model.keras").write_bytes(b"zip")
    with pytest.raises(ValueError, match="keras.saving.load_model"):
        load_saved_model(tmp_path / "model.keras")
    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="wrap it in `KerasModel`"):
        load_saved_model(network)
