"""Tests for keras_interp.inspection.layer_flow (glimpse's dataflow, on Keras)."""

from __future__ import annotations

import gc
import weakref

import keras
import numpy as np
import pytest

from keras_interp.inspection import layer_flow
from keras_interp.inspection.dataflow import SOURCE, LayerSpec, State
from keras_interp.inspection.expose import expose as real_expose
from keras_interp.inspection.layer_flow import (
    InputSizeError,
    LayerGraph,
    build_layer,
    sample_patches,
    sample_patches_from_data,
)


class State2(State):
    pass


# --- glimpse's layer_test ----------------------------------------------------------

L1 = LayerSpec("l1", "layer-1")
L2 = LayerSpec("l2", "layer-2", [L1])
TWO_LAYERS = LayerGraph([L1, L2])


def test_layer_from_id_and_name():
    assert TWO_LAYERS.from_id(L1.id_) is L1 and TWO_LAYERS.from_id(L2) is L2
    assert TWO_LAYERS.from_name(L1.name) is L1 and TWO_LAYERS.from_name("LAYER-2") is L2
    with pytest.raises(ValueError, match=r"unknown model layer.*layer-1"):
        TWO_LAYERS.from_name("layer-3")
    with pytest.raises(ValueError, match=r"unknown model layer.*Received: id_='l3'"):
        TWO_LAYERS.from_id("l3")


def test_layer_all_sublayer_top():
    assert set(TWO_LAYERS.all_layers()) == {L2, L1}
    assert TWO_LAYERS.is_sublayer(L1, L2) and not TWO_LAYERS.is_sublayer(L2, L1)
    assert TWO_LAYERS.top_layer() == L2
    assert repr(L2) == "LayerSpec(id_='l2', name='layer-2', depends=['l1'])"
    assert repr(L1) == "LayerSpec(id_='l1', name='layer-1', depends=None)"


# --- Keras models ------------------------------------------------------------------


@pytest.fixture(scope="module")
def branchy() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2), name="img")
    conv = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    relu = keras.layers.ReLU(name="relu")(conv)
    proj = keras.layers.Conv2D(3, 1, name="proj")(conv)
    added = keras.layers.Add(name="add")([relu, proj])
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(added)
    logits = keras.layers.Dense(2, activation="softmax", name="logits")(pooled)
    return keras.Model(inputs, logits, name="branchy")


def make_nested() -> tuple[keras.Model, keras.Model]:
    inner = keras.Input((8, 8, 3), name="bb_in")
    x = keras.layers.Conv2D(4, 3, name="c1")(inner)
    x = keras.layers.Conv2D(4, 3, name="c2")(x)
    backbone = keras.Model(inner, x, name="backbone")
    outer_in = keras.Input((8, 8, 3), name="outer_in")
    y = keras.layers.GlobalAveragePooling2D(name="gap")(backbone(outer_in))
    y = keras.layers.Dense(2, name="head")(y)
    return keras.Model(outer_in, y, name="outer"), backbone


@pytest.fixture(scope="module")
def nested() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(1)
    return make_nested()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, 6, 6, 2)).astype(np.float32)


def direct(model: keras.Model, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
    return [np.asarray(v) for v in sub(x)]


def test_layer_graph_of_a_functional_model(branchy):
    layers = LayerGraph.from_model(branchy)
    ids = [spec.id_ for spec in layers.all_layers()]
    assert ids == ["img", "conv", "relu", "proj", "add", "gap", "logits"]
    assert (
        layers.inputs == [layers.from_id("img")] and layers.top_layer().id_ == "logits"
    )
    assert {d.id_ for d in layers.from_id("add").depends} == {"relu", "proj"}
    assert layers.from_name("CONV").depends == (layers.from_id("img"),)
    assert layers.is_sublayer("conv", "add") and layers.is_sublayer("img", "logits")
    assert not layers.is_sublayer("add", "conv") and not layers.is_sublayer(
        "relu", "proj"
    )


def test_layer_graph_of_a_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            keras.layers.Dense(2, name="d2"),
        ]
    )
    layers = LayerGraph.from_model(model)
    (source,) = layers.inputs
    assert [s.id_ for s in layers.all_layers()] == [source.id_, "d1", "d2"]
    assert layers.from_id("d2").depends == (layers.from_id("d1"),)
    assert layers.is_sublayer(source, "d2") and layers.top_layer().id_ == "d2"


def test_layer_graph_of_a_nested_model(nested):
    layers = LayerGraph.from_model(nested[0])
    c1 = layers.from_name("c1")
    assert c1.id_ == "backbone/c1" and c1.name == "c1"
    assert layers.is_sublayer("outer_in", "backbone/c2")
    assert layers.is_sublayer("backbone/c1", "head")
    assert layers.from_id("gap").depends == (layers.from_id("backbone"),)
    assert layers.top_layer().id_ == "head"


def test_ambiguous_layer_name():
    inner = keras.Input((3,))
    sub = keras.Model(inner, keras.layers.Dense(2, name="dense")(inner), name="sub")
    outer_in = keras.Input((3,))
    out = keras.layers.Dense(1, name="dense")(sub(outer_in))
    layers = LayerGraph.from_model(keras.Model(outer_in, out))
    with pytest.raises(
        ValueError, match=r"'dense' is ambiguous.*\['sub/dense', 'dense'\]"
    ):
        layers.from_name("dense")
    assert layers.from_id("sub/dense").name == "dense"


def test_build_layer_matches_the_model_layers(branchy, images):
    names = ["conv", "relu", "proj", "add", "gap", "logits"]
    state = build_layer(branchy, tuple(names), images)
    for name, expected in zip(names, direct(branchy, names, images)):
        assert isinstance(state[name], np.ndarray)
        np.testing.assert_allclose(state[name], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state["logits"].sum(-1), 1.0, rtol=1e-6)


def test_build_layer_sequential_by_hand():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, "relu", name="d1")]
    )
    kernel = np.array([[1.0, -1.0], [2.0, 0.5], [-1.0, 1.0]], np.float32)
    model.get_layer("d1").set_weights([kernel, np.array([0.5, -2.0], np.float32)])
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]], np.float32)
    state = build_layer(model, "d1", x)
    # [1, 2, 3] @ kernel + b = [2.5, 1.0]; [0, -1, 1] @ kernel + b = [-2.5, -1.5].
    np.testing.assert_allclose(state["d1"], [[2.5, 1.0], [0.0, 0.0]])


def test_build_layer_save_all(branchy, images):
    source = LayerGraph.from_model(branchy).inputs[0]
    state = build_layer(branchy, "conv", State({source: images}), save_all=True)
    assert source in state and "conv" in state
    np.testing.assert_array_equal(state[source], images)
    state = build_layer(branchy, "conv", {"img": images, SOURCE: "cat.png"}, False)
    assert source not in state and "conv" in state and state[SOURCE] == "cat.png"
    assert list(state) == ["conv", SOURCE.id_]


def test_build_layer_keeps_the_state_type_and_input(branchy, images):
    original = State2(img=images)
    state = build_layer(
        branchy, LayerGraph.from_model(branchy).from_id("gap"), original
    )
    assert type(state) is State2 and "gap" in state and list(original) == ["img"]
    assert type(build_layer(branchy, "gap", original, save_all=False)) is State2


def test_build_layer_errors(branchy, images):
    with pytest.raises(ValueError, match=r"Input state is missing source information"):
        build_layer(branchy, "conv", State())
    with pytest.raises(
        ValueError, match=r"unknown model layer.*Received: name='convv'"
    ):
        build_layer(branchy, "convv", images)
    with pytest.raises(ValueError, match=r"unknown model layer.*id_='invalid'"):
        build_layer(branchy, LayerSpec("invalid", "invalid-layer"), images)
    with pytest.raises(TypeError, match=r"`state` must be a State, a mapping"):
        build_layer(branchy, "conv", [images])


def test_build_layer_present_layers_need_no_input(branchy):
    state = State(conv=np.ones(3))
    assert build_layer(branchy, "conv", state, save_all=False) == State(conv=np.ones(3))


class Counting:
    """Wraps `expose` and its sub-models, counting builds and forward passes."""

    def __init__(self):
        self.exposed, self.calls = [], 0

    def __call__(self, model, arguments, outputs):
        sub = real_expose(model, arguments, outputs)
        self.exposed.append(tuple(arguments))

        def run(inputs):
            self.calls += 1
            return sub(inputs)

        return run


def test_build_layer_caches_values_and_sub_models(monkeypatch, images):
    keras.utils.set_random_seed(2)
    model, _ = make_nested()
    x = np.random.default_rng(3).random((2, 8, 8, 3)).astype(np.float32)
    counting = Counting()
    monkeypatch.setattr(layer_flow, "expose", counting)
    state = build_layer(model, ("backbone/c1", "gap"), x)
    assert counting.exposed == [("backbone/c1", "gap")] and counting.calls == 1
    again = build_layer(model, ("gap", "backbone/c1"), state)  # all cached
    assert counting.calls == 1 and again == state
    build_layer(model, ("backbone/c1", "gap"), x * 2)  # new input, same sub-model
    assert len(counting.exposed) == 1 and counting.calls == 2
    build_layer(model, ("gap", "head"), state)  # only head is missing
    assert counting.exposed[-1] == ("head",) and counting.calls == 3


def test_nested_backbone_layer_is_reachable(nested):
    model, backbone = nested
    x = np.random.default_rng(4).random((2, 8, 8, 3)).astype(np.float32)
    state = build_layer(model, ("backbone/c1", "c2", "backbone/bb_in", "head"), x)
    inner = keras.Model(backbone.input, backbone.get_layer("c1").output)
    np.testing.assert_allclose(state["backbone/c1"], inner(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state["backbone/c2"], backbone(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state["head"], model(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(state["backbone/bb_in"], x)  # a nested input


def test_cache_does_not_keep_the_model_alive():
    keras.utils.set_random_seed(5)
    model, _ = make_nested()
    build_layer(model, "backbone/c2", np.zeros((1, 8, 8, 3), np.float32))
    assert model in layer_flow._CACHE
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_multi_input_model():
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], keras.layers.Add(name="sum")([a, b]))
    xa, xb = np.ones((1, 2), np.float32), np.full((1, 2), 2.0, np.float32)
    state = build_layer(model, "sum", {"a": xa, "b": xb})
    np.testing.assert_allclose(state["sum"], [[3.0, 3.0]])
    with pytest.raises(ValueError, match=r"The model has 2 inputs.*\['a', 'b'\]"):
        build_layer(model, "sum", xa)
    with pytest.raises(ValueError, match=r"missing source information.*\['b'\]"):
        build_layer(model, "sum", {"a": xa})


def test_tf_keras_model():
    tf_keras = pytest.importorskip("tf_keras")
    inputs = tf_keras.Input((4,), name="ti")
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="td")(inputs))
    x = np.random.default_rng(6).random((3, 4)).astype(np.float32)
    state = build_layer(model, "td", x)
    np.testing.assert_allclose(state["td"], model(x).numpy(), rtol=1e-6)
    assert LayerGraph.from_model(model).from_id("td").depends[0].id_ == "ti"


# --- glimpse's SamplePatches tests -------------------------------------------------


def test_sample_patches_no_samples(branchy, images):
    patches, locs = sample_patches(branchy, "conv", 0, 2, images)
    assert patches.shape == (0, 2, 2, 3) and locs.shape == (0, 3)


def test_sample_patches_end_to_end(branchy, images):
    patches, locs = sample_patches(branchy, "conv", 10, 3, images, seed=0)
    conv = build_layer(branchy, "conv", images)["conv"]  # (2, 4, 4, 3)
    assert patches.shape == (10, 3, 3, 3) and patches.dtype == np.float32
    assert locs.shape == (10, 3) and locs.dtype == np.int64
    for patch, (b, y, x) in zip(patches, locs):
        assert 0 <= b <= 1 and 0 <= y <= 4 - 3 and 0 <= x <= 4 - 3
        np.testing.assert_array_equal(patch, conv[b, y : y + 3, x : x + 3])


def test_sample_patches_annotates_input_size_error(branchy, images):
    state = State(img=images)
    state[SOURCE] = "mock source"
    with pytest.raises(InputSizeError, match=r"smaller \(scale 0: \(4, 4\)\)") as info:
        sample_patches(branchy, "conv", 1, 5, state)
    assert info.value.source == "mock source" and info.value.scale == 0
    assert (
        info.value.layer == LayerSpec("conv", "conv")
        and info.value.layer.name == "conv"
    )


def test_sample_patches_from_data_array_list_input():
    data = [np.random.random((100, 100)) for _ in range(4)]
    patches, locs = sample_patches_from_data(data, patch_width=10, num_patches=1)
    assert patches[0].shape == (10, 10) and len(locs[0]) == 3


def test_sample_patches_from_data_array_input():
    data = np.random.random((4, 100, 100))  # 4 scales of 100x100 maps
    patches, locs = sample_patches_from_data(data, patch_width=10, num_patches=1)
    assert patches[0].shape == (10, 10) and len(locs[0]) == 3


def test_sample_patches_from_data_channels():
    data = np.random.random((4, 100, 100, 3))  # channels last
    patches, locs = sample_patches_from_data(data, patch_width=10, num_patches=1)
    assert patches[0].shape == (10, 10, 3) and len(locs[0]) == 3


def test_sample_patches_from_data_location_is_accurate():
    data = np.random.random((1, 10, 10))
    patches, locs = sample_patches_from_data(data, patch_width=10, num_patches=1)
    assert (locs[0] == (0, 0, 0)).all()
    np.testing.assert_array_equal(patches[0], data[0].astype(np.float32))


def test_sample_patches_from_data_oversampling():
    data = np.random.random((1, 10, 10))
    patches, locs = sample_patches_from_data(data, patch_width=10, num_patches=2)
    assert len(patches) == len(locs) == 2
    assert (patches[0] == patches[1]).all() and (locs[0] == locs[1]).all()


def test_sample_patches_from_data_input_size_error_scale():
    with pytest.raises(InputSizeError) as info:
        sample_patches_from_data(np.random.random((1, 10, 10)), 11, 1)
    assert info.value.scale == 0 and isinstance(info.value, ValueError)
    with pytest.raises(InputSizeError, match=r"patch_width=10") as info:
        sample_patches_from_data([np.zeros((20, 20)), np.zeros((5, 30))], 10, 1)
    assert info.value.scale == 1


def test_sample_patches_from_data_bounds_are_inclusive_and_seeded():
    data = np.arange(2 * 11 * 12, dtype=np.float64).reshape(2, 11, 12)
    patches, locs = sample_patches_from_data(data, 10, 400, seed=7)
    assert set(locs[:, 0]) == {0, 1}
    assert set(locs[:, 1]) == {0, 1} and set(locs[:, 2]) == {0, 1, 2}
    for patch, (s, y, x) in zip(patches, locs):
        np.testing.assert_array_equal(patch, data[s, y : y + 10, x : x + 10])
    again, locs_again = sample_patches_from_data(data, 10, 400, seed=7)
    np.testing.assert_array_equal(again, patches)
    np.testing.assert_array_equal(locs_again, locs)
    _, other = sample_patches_from_data(data, 10, 400, seed=8)
    assert not np.array_equal(other, locs)


def test_sample_patches_from_data_errors():
    with pytest.raises(ValueError, match=r"non-empty sequence of maps"):
        sample_patches_from_data([], 2, 1)
    with pytest.raises(ValueError, match=r"same trailing axes"):
        sample_patches_from_data([np.zeros((4, 4, 2)), np.zeros((4, 4, 3))], 2, 1)
    with pytest.raises(ValueError, match=r"non-empty sequence"):
        sample_patches_from_data(np.zeros(5), 2, 1)
    with pytest.raises(ValueError, match=r"`patch_width` must be a positive integer"):
        sample_patches_from_data(np.zeros((1, 4, 4)), 0, 1)
    with pytest.raises(ValueError, match=r"`num_patches` must be a non-negative"):
        sample_patches_from_data(np.zeros((1, 4, 4)), 2, -1)
    with pytest.raises(TypeError, match=r"`data` must be an array or a list"):
        sample_patches_from_data("data", 2, 1)
