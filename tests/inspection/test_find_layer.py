"""find_layer and iter_layers: every reference form, at any depth, with errors."""

from __future__ import annotations

import keras
import pytest
import tf_keras

from keras_interp.inspection import find_layer, has_graph, iter_layers
from keras_interp.inspection.graph import layer_dependencies
from keras_interp.testing import models


@pytest.fixture(scope="module")
def nested():
    return models.functional_nested(size=32)


def test_reference_forms(nested):
    backbone = nested.get_layer("resnet50v2")
    inner = backbone.get_layer("conv2_block1_out")
    assert find_layer(nested, "resnet50v2") is backbone
    assert find_layer(nested, "resnet50v2/conv2_block1_out") is inner
    assert find_layer(nested, ("resnet50v2", "conv2_block1_out")) is inner
    assert find_layer(nested, "conv2_block1_out") is inner
    assert find_layer(nested, inner) is inner
    assert find_layer(nested, -1) is nested.layers[-1]
    assert find_layer(nested, 1) is nested.layers[1]


def test_iter_layers_paths(nested):
    paths = [path for path, _ in iter_layers(nested)]
    assert paths[:2] == ["resnet50v2", "resnet50v2/conv1_pad"]
    assert paths[-1] == "predictions"
    assert "resnet50v2/post_relu" in paths
    assert len(paths) == len(set(paths))
    assert has_graph(nested) and has_graph(nested.get_layer("resnet50v2"))


def test_names_with_slash_need_a_tuple():
    inputs = tf_keras.Input((4, 4, 3), name="x")
    inner_in = tf_keras.Input((4, 4, 3))
    inner_out = tf_keras.layers.Conv2D(2, 1, name="conv/a")(inner_in)
    block = tf_keras.Model(inner_in, inner_out, name="block/1")
    model = tf_keras.Model(inputs, block(inputs), name="outer")
    assert find_layer(model, ("block/1", "conv/a")) is block.get_layer("conv/a")
    assert find_layer(model, "block/1") is block
    assert find_layer(model, "conv/a") is block.get_layer("conv/a")


def test_errors(nested):
    with pytest.raises(
        ValueError,
        match=r"No layer 'resnet50v2/conv2_blok1_out'.*"
        r"Closest layer names: .*conv2_block1_out",
    ):
        find_layer(nested, "resnet50v2/conv2_blok1_out")
    with pytest.raises(ValueError, match="out of range for a model with 5 layers"):
        find_layer(nested, 7)
    with pytest.raises(TypeError, match="must be a layer name.*Received: ref=2.5"):
        find_layer(nested, 2.5)
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        find_layer(object(), "x")
    other = keras.layers.Dense(2, name="stranger")
    with pytest.raises(ValueError, match="No layer 'stranger'"):
        find_layer(nested, other)


def test_ambiguous_name():
    def block(name):
        inputs = keras.Input((4,))
        return keras.Model(
            inputs, keras.layers.Dense(4, name="dense")(inputs), name=name
        )

    inputs = keras.Input((4,))
    model = keras.Model(inputs, block("b")(block("a")(inputs)))
    with pytest.raises(ValueError, match="'dense' is ambiguous.*a/dense, b/dense"):
        find_layer(model, "dense")
    assert find_layer(model, "b/dense") is model.get_layer("b").get_layer("dense")


def test_inbound_layers_flat_dag():
    model = models.gap_dense()
    assert layer_dependencies(model) == [
        ("images", []),
        ("conv", ["images"]),
        ("gap", ["conv"]),
        ("logits", ["gap"]),
    ]
    inputs = keras.Input((8, 8, 3), name="x")
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="c")], name="bb"
    )
    left = inner(inputs)
    right = keras.layers.Conv2D(2, 3, name="side")(inputs)
    out = keras.layers.Add(name="add")([left, right])
    deps = dict(layer_dependencies(keras.Model(inputs, out)))
    assert deps["add"] == ["bb", "side"]
    assert deps["bb"] == ["bb/c"]
    assert deps["bb/c"] == [next(p for p in deps if p.startswith("bb/input"))]
    assert deps[next(p for p in deps if p.startswith("bb/input"))] == ["x"]
