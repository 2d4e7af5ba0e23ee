"""Receptive fields: published values, gradient checks, and error messages."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_interp.analysis.empirical import (
    empirical_receptive_field,
    gradient_receptive_field,
)
from keras_interp.analysis.receptive_field import (
    ReceptiveField,
    receptive_fields,
    theoretical_receptive_field,
)
from keras_interp.inspection.graph import find_layer, layer_dependencies, output_shape

L = keras.layers


def check_map_sizes(model, fields):
    """Our computed map sizes equal Keras's output shapes for every layer."""
    for path, field in fields.items():
        shape = output_shape(find_layer(model, path))
        if shape is not None and len(shape) == 4:
            assert field.map_size == tuple(shape[1:3]), path


# ---------------------------------------------------------------- published values


def test_vgg16_published_sizes():
    model = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(224, 224, 3)
    )
    fields = receptive_fields(model)
    check_map_sizes(model, fields)
    conv = theoretical_receptive_field(model, "block5_conv3")
    pool = theoretical_receptive_field(model, "block5_pool")
    assert (conv.size, conv.jump, conv.map_size) == ((196, 196), (16, 16), (14, 14))
    assert (pool.size, pool.jump, pool.map_size) == ((212, 212), (32, 32), (7, 7))
    assert fields["block1_conv1"].size == (3, 3)
    assert fields["block1_pool"].size == (6, 6)


def alexnet(conv2_padding="same"):
    """dnnbrain's AlexNet features up to conv3, torch paddings made explicit."""
    layers = [keras.Input((224, 224, 3)), L.ZeroPadding2D(2)]
    layers += [L.Conv2D(4, 11, 4, name="conv1"), L.ReLU(), L.MaxPooling2D(3, 2)]
    if conv2_padding == "same":
        layers += [L.Conv2D(4, 5, padding="same", name="conv2")]
    else:
        layers += [L.ZeroPadding2D(2), L.Conv2D(4, 5, name="conv2")]
    layers += [L.ReLU(), L.MaxPooling2D(3, 2)]
    layers += [L.Conv2D(4, 3, padding="same", name="conv3")]
    return keras.Sequential(layers)


@pytest.mark.parametrize("conv2_padding", ["same", "zeros"])
def test_alexnet_conv3_is_99_as_in_dnnbrain(conv2_padding):
    model = alexnet(conv2_padding)
    field = theoretical_receptive_field(model, "conv3")
    check_map_sizes(model, receptive_fields(model))
    assert field.size == (99, 99) and field.jump == (16, 16)
    assert field.start == (15.5, 15.5) and field.map_size == (13, 13)
    # dnnbrain's find_region: (start + u j -+ r / 2) clipped to the image.
    assert field.find_region((0, 0)) == [(0, 65), (0, 65)]
    assert field.find_region((0, 0), clip=False) == [(-34, 65), (-34, 65)]
    assert field.find_region((6, 3)) == [(62, 161), (14, 113)]
    assert field.find_region((12, 12)) == [(158, 224), (158, 224)]
    assert field.find_region((12, 12), clip=False) == [(158, 257), (158, 257)]


def test_resnet50_matches_the_published_size_and_grows_with_depth():
    model = keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3)
    )
    fields = receptive_fields(model)
    check_map_sizes(model, fields)
    stages = ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out"]
    stages = [fields[s] for s in ["pool1_pool", *stages, "conv5_block3_out"]]
    sizes = [s.size[0] for s in stages]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert [s.jump[0] for s in stages] == [4, 4, 8, 16, 32]
    # Araujo et al.'s table: resnet_v1_50, receptive field 483, stride 32.
    assert fields["conv5_block3_out"].size == (483, 483)
    pooled = fields["avg_pool"]
    assert pooled.map_size == (1, 1)
    assert pooled.find_region((0, 0)) == [(0, 224), (0, 224)]


def test_inception_v3_matches_the_published_size_and_padding():
    model = keras.applications.InceptionV3(
        weights=None, include_top=False, input_shape=(299, 299, 3)
    )
    fields = receptive_fields(model)
    check_map_sizes(model, fields)
    mixed = [fields[f"mixed{i}"] for i in range(11)]
    sizes = [m.size[0] for m in mixed]
    assert sizes == sorted(sizes)
    assert mixed[-1].jump == (32, 32) and mixed[-1].map_size == (8, 8)
    # Araujo et al.'s table: inception_v3, field 1311, stride 32, padding 618.
    assert mixed[-1].size == (1311, 1311)
    assert mixed[-1].find_region((0, 0), clip=False)[0][0] == -618
    # The union of the branches: mixed0's widest branch (its 5x5 or double
    # 3x3 tower). Branch layers are found through the graph, not by their
    # automatic names, which depend on how many layers the process made.
    branches = dict(layer_dependencies(model))["mixed0"]
    assert len(branches) == 4
    assert fields["mixed0"].size == max(fields[b].size for b in branches)
    assert fields["mixed0"].size > min(fields[b].size for b in branches)


# ------------------------------------------------------------------ graph handling


def small_backbone(name="backbone"):
    inputs = keras.Input((24, 20, 3))
    x = L.Conv2D(4, 3, strides=2, padding="same", name="c1")(inputs)
    y = L.DepthwiseConv2D(3, dilation_rate=2, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="bn")(y)
    z = L.SeparableConv2D(4, 5, padding="same", name="sep")(x)
    x = L.Add(name="add")([y, z])
    x = L.AveragePooling2D(3, 2, padding="same", name="pool")(x)
    x = L.Conv2D(4, 3, name="c2")(x)
    return keras.Model(inputs, x, name=name)


def test_a_nested_model_gives_the_same_fields_as_its_flat_twin():
    flat = small_backbone()
    inputs = keras.Input((24, 20, 3))
    x = L.Rescaling(2.0)(inputs)
    x = small_backbone()(x)
    outputs = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(x))
    nested = keras.Model(inputs, outputs)
    flat_fields = receptive_fields(flat)
    for name in ["c1", "dw", "sep", "add", "pool", "c2"]:
        a = theoretical_receptive_field(nested, f"backbone/{name}")
        b = flat_fields[name]
        assert a == ReceptiveField(**{**b.__dict__, "layer": f"backbone/{name}"})
    assert theoretical_receptive_field(nested, "backbone") == ReceptiveField(
        **{**flat_fields["c2"].__dict__, "layer": "backbone"}
    )
    field = theoretical_receptive_field(nested, "backbone/c2")
    for unit in [(0, 0), (np.int64(2), 1)]:
        result = gradient_receptive_field(nested, "backbone/c2", unit, channel=0)
        (h0, h1), (w0, w1) = field.find_region(unit)
        (a0, a1), (b0, b1) = result.region
        assert h0 <= a0 < a1 <= h1 and w0 <= b0 < b1 <= w1
    head = theoretical_receptive_field(nested, "logits")
    assert head.map_size == (1, 1)
    assert head.find_region((0, 0)) == [(0, 24), (0, 20)]


def test_tf_keras_models_are_supported():
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [
            tf_keras.Input((32, 32, 3)),
            tf_keras.layers.Conv2D(2, 3, strides=2, padding="same", name="a"),
            tf_keras.layers.MaxPooling2D(2, name="b"),
        ]
    )
    field = theoretical_receptive_field(model, "b")
    assert (field.size, field.jump, field.start) == ((5, 5), (4, 4), (2.5, 2.5))


def test_same_padding_offsets_follow_tensorflow():
    # k=3, s=2: TF pads 1 on the right for an even input, 1 on each side for odd.
    for size, start in ((8, 1.5), (9, 0.5)):
        model = keras.Sequential(
            [keras.Input((size, size, 1)), L.Conv2D(1, 3, 2, "same", name="c")]
        )
        field = theoretical_receptive_field(model, "c")
        assert field.start == (start, start) and field.size == (3, 3)


def test_input_shape_for_fully_convolutional_models():
    model = keras.Sequential(
        [keras.Input((None, None, 3)), L.Conv2D(1, 3, 2, "same", name="c")]
    )
    with pytest.raises(ValueError, match="input_shape=\\(224, 224\\)"):
        theoretical_receptive_field(model, "c")
    field = theoretical_receptive_field(model, "c", input_shape=(9, 8))
    assert field.map_size == (5, 4) and field.start == (0.5, 1.5)
    with pytest.raises(ValueError, match="2 positive integers"):
        theoretical_receptive_field(model, "c", input_shape=(9,))


def test_conv1d_and_conv3d():
    ones = {"kernel_initializer": "ones"}
    model = keras.Sequential(
        [
            keras.Input((50, 2)),
            L.Conv1D(2, 4, padding="causal", name="a", **ones),
            L.Conv1D(2, 3, strides=3, name="b", **ones),
        ]
    )
    field = theoretical_receptive_field(model, "b")
    assert field.size == (6,) and field.find_region(0) == [(0, 3)]
    assert field.find_region(0, clip=False) == [(-3, 3)]
    for unit in (0, 5, 15):
        result = gradient_receptive_field(model, "b", unit, channel=1)
        assert result.region == field.find_region(unit)
    model = keras.Sequential(
        [
            keras.Input((50, 2)),
            L.ZeroPadding1D((3, 1)),
            L.Cropping1D((1, 0)),
            L.MaxPooling1D(2, name="p"),
        ]
    )
    field = theoretical_receptive_field(model, "p")
    assert field.map_size == (26,) and field.find_region(0, clip=False) == [(-2, 0)]
    model = keras.Sequential(
        [keras.Input((8, 8, 8, 1)), L.Conv3D(1, 3, name="a"), L.MaxPooling3D(2)]
    )
    assert receptive_fields(model)["max_pooling3d"].size == (4, 4, 4)


def test_a_model_with_an_image_and_a_vector_input():
    image, vector = keras.Input((8, 8, 1)), keras.Input((3,))
    x = L.Conv2D(3, 3, name="c")(image)
    y = L.Reshape((1, 1, 3))(L.Dense(3)(vector))
    model = keras.Model([image, vector], L.Add(name="add")([x, y]))
    assert theoretical_receptive_field(model, "c").size == (3, 3)
    with pytest.raises(ValueError, match="not an image"):
        theoretical_receptive_field(model, "add")


def test_lambda_layers_need_pass_through():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Lambda(lambda x: x * 2, name="lam"),
            L.Conv2D(1, 3, name="c"),
        ]
    )
    with pytest.raises(ValueError, match="pass_through=\\['lam'\\]"):
        theoretical_receptive_field(model, "c")
    field = theoretical_receptive_field(model, "c", pass_through=["lam"])
    assert field.size == (3, 3)
    field = theoretical_receptive_field(model, "c", pass_through=[L.Lambda])
    assert field.size == (3, 3)


def test_unsupported_graphs_raise_clearly():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2DTranspose(1, 3, 2, name="up"),
            L.Conv2D(1, 3, name="c"),
        ]
    )
    with pytest.raises(ValueError, match="'up' \\(Conv2DTranspose\\) upsamples"):
        theoretical_receptive_field(model, "c")
    inputs = keras.Input((16, 16, 1))
    a = L.Conv2D(1, 1, strides=4, name="a")(inputs)
    b = L.Cropping2D(2)(L.Conv2D(1, 1, strides=2, name="b")(inputs))
    model = keras.Model(inputs, L.Add(name="add")([a, b]))
    with pytest.raises(ValueError, match="different strides \\[2, 4\\]"):
        theoretical_receptive_field(model, "add")
    model = keras.Model(inputs, L.Concatenate(axis=1, name="cat")([a, a]))
    with pytest.raises(ValueError, match="concatenates along a spatial axis"):
        theoretical_receptive_field(model, "cat")


def test_layer_and_input_errors():
    model = alexnet()
    with pytest.raises(ValueError, match="Closest layer names: conv3"):
        theoretical_receptive_field(model, "conv33")
    vector = keras.Sequential([keras.Input((10,)), L.Dense(2, name="d")])
    with pytest.raises(ValueError, match="not an image"):
        theoretical_receptive_field(vector, "d")
    field = theoretical_receptive_field(model, "conv3")
    with pytest.raises(ValueError, match="outside the feature map .* \\(13, 13\\)"):
        field.find_region((13, 0))
    with pytest.raises(ValueError, match="outside the feature map"):
        field.find_region((0, -1))
    with pytest.raises(ValueError, match="must be 2 integer"):
        field.find_region((1, 2, 3))
    with pytest.raises(TypeError, match="must be a Keras model"):
        theoretical_receptive_field("model", "conv3")


# --------------------------------------------------------------- gradient checks


def ones_model():
    """All-positive weights and inputs: the gradient is non-zero on exactly the
    theoretical region (clipped), so its bounding box must equal it."""
    init = {"kernel_initializer": "ones", "bias_initializer": "zeros"}
    inputs = keras.Input((23, 19, 1))
    x = L.ZeroPadding2D(((1, 0), (2, 1)))(inputs)
    x = L.Conv2D(2, 3, strides=2, padding="same", **init)(x)
    y = L.Conv2D(2, 3, dilation_rate=2, padding="same", **init)(x)
    z = L.Conv2D(2, (1, 3), padding="same", **init)(x)
    x = L.ReLU()(L.Add()([y, z]))
    x = L.Cropping2D(((1, 0), (0, 1)))(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.Conv2D(2, (3, 2), padding="valid", name="top", **init)(x)
    return keras.Model(inputs, x)


def border_and_inner_units(map_size):
    h, w = map_size
    return {
        (0, 0),
        (0, w - 1),
        (h - 1, 0),
        (h - 1, w - 1),
        (h // 2, w // 2),
        (1, w // 2),
        (h // 2, 0),
    }


def test_gradient_region_equals_the_theoretical_one_for_positive_weights():
    model = ones_model()
    field = theoretical_receptive_field(model, "top")
    units = border_and_inner_units(field.map_size)
    for unit in units:
        result = gradient_receptive_field(model, "top", unit, channel=1)
        assert result.region == field.find_region(unit), unit
    corner = field.find_region((0, 0))
    assert corner[0][0] == 0 and field.find_region((0, 0), clip=False)[0][0] < 0


def random_cnn():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((31, 26, 2))
    x = L.Conv2D(6, 5, strides=2, padding="valid", activation="relu")(inputs)
    y = L.Conv2D(6, 3, dilation_rate=2, padding="same", activation="relu")(x)
    x = L.Add()([x, y])
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    x = L.Conv2D(5, 3, strides=(1, 2), padding="same", name="top")(x)
    return keras.Model(inputs, x)


def test_the_theoretical_region_contains_the_gradient_one():
    model = random_cnn()
    field = theoretical_receptive_field(model, "top")
    assert field.map_size == (7, 3)
    for unit in border_and_inner_units(field.map_size):
        for channel in (0, 4, None):
            result = gradient_receptive_field(model, "top", unit, channel=channel)
            (h0, h1), (w0, w1) = field.find_region(unit)
            (a0, a1), (b0, b1) = result.region
            assert h0 <= a0 < a1 <= h1 and w0 <= b0 < b1 <= w1, (unit, channel)
            assert not result.mask[:h0].any() and not result.mask[h1:].any()
            assert result.size == (a1 - a0, b1 - b0)


def test_a_broadcast_branch_spreads_the_field_to_the_whole_image():
    inputs = keras.Input((16, 16, 1))
    x = L.Conv2D(2, 3, padding="same", name="c")(inputs)
    squeeze = L.Reshape((1, 1, 2))(L.GlobalAveragePooling2D()(x))
    x = L.Multiply(name="excite")([x, L.Conv2D(2, 1, name="se")(squeeze)])
    model = keras.Model(inputs, x)
    field = theoretical_receptive_field(model, "excite")
    assert field.map_size == (16, 16)
    for unit in [(0, 0), (15, 15), (3, 9)]:
        assert field.find_region(unit) == [(0, 16), (0, 16)]
        result = gradient_receptive_field(model, "excite", unit, channel=0)
        assert result.region == [(0, 16), (0, 16)]


def test_gradient_receptive_field_options_and_errors():
    model = random_cnn()
    images = np.random.default_rng(0).uniform(size=(3, 31, 26, 2))
    one = gradient_receptive_field(model, "top", (2, 2), channel=0, images=images[0])
    three = gradient_receptive_field(model, "top", (2, 2), channel=0, images=images)
    assert one.saliency.shape == (31, 26) and one.saliency.max() == 1.0
    assert three.mask.sum() >= one.mask.sum()
    loose = gradient_receptive_field(model, "top", (2, 2), channel=0, threshold=0.5)
    assert loose.mask.sum() < three.mask.sum()
    with pytest.raises(ValueError, match="outside the feature map of layer 'top'"):
        gradient_receptive_field(model, "top", (7, 0))
    with pytest.raises(ValueError, match="must be 2 integer"):
        gradient_receptive_field(model, "top", 3)
    with pytest.raises(ValueError, match="must be in \\[0, 5\\)"):
        gradient_receptive_field(model, "top", (0, 0), channel=5)
    with pytest.raises(TypeError, match="`channel` must be an integer"):
        gradient_receptive_field(model, "top", (0, 0), channel=1.0)
    with pytest.raises(ValueError, match="Closest layer names: top"):
        gradient_receptive_field(model, "tops", (0, 0))
    with pytest.raises(ValueError, match="must be images of shape \\(B, 31, 26, 2\\)"):
        gradient_receptive_field(model, "top", (0, 0), images=images[..., :1])
    with pytest.raises(ValueError, match="must have rank 4"):
        gradient_receptive_field(model, "top", (0, 0), images=images[0, 0])
    with pytest.raises(ValueError, match="`threshold` must be in \\[0, 1\\)"):
        gradient_receptive_field(model, "top", (0, 0), threshold=1.0)
    head = keras.Model(model.inputs, L.Dense(2, name="d")(L.Flatten()(model.output)))
    with pytest.raises(ValueError, match="'d' has no spatial output"):
        gradient_receptive_field(head, "d", (0, 0))
    vector = keras.Sequential([keras.Input((10,)), L.Dense(2, name="d")])
    with pytest.raises(ValueError, match="one image input"):
        gradient_receptive_field(vector, "d", (0, 0))


# ------------------------------------------------------- dnnbrain's empirical field


def box_filter_model(size=20):
    """A 5x5 box filter: a dot becomes a 5x5 block of 1/25 around it."""
    model = keras.Sequential(
        [
            keras.Input((size, size, 1)),
            L.Conv2D(2, 5, padding="same", name="box", kernel_initializer="ones"),
        ]
    )
    kernel, bias = model.get_layer("box").get_weights()
    model.get_layer("box").set_weights([kernel / 25, bias])
    return model


def test_empirical_field_centres_the_strongest_response():
    model = box_filter_model()
    images = np.zeros((2, 20, 20, 1), np.float32)
    images[0, 9, 11] = 1.0
    centred = empirical_receptive_field(
        model, "box", 1, images[:1], interpolation="nearest"
    )
    assert centred.shape == (5, 5)
    np.testing.assert_allclose(centred, np.full((5, 5), 1 / 25), rtol=1e-5)
    # A dot in the corner: the region clipped at the top left is pasted at
    # the bottom right of the field (dnnbrain's alignment, without its 224).
    images[1, 0, 0] = 1.0
    mean = empirical_receptive_field(model, "box", 0, images, interpolation="nearest")
    expected = np.full((5, 5), 1 / 50)
    expected[2:, 2:] = 1 / 25
    np.testing.assert_allclose(mean, expected, rtol=1e-5)


def test_empirical_field_on_a_strided_layer():
    model = random_cnn()
    images = np.random.default_rng(1).uniform(size=(3, 31, 26, 2))
    result = empirical_receptive_field(model, "top", 2, images, threshold=0.5)
    field = theoretical_receptive_field(model, "top")
    assert result.shape == field.size and np.isfinite(result).all()


def test_empirical_receptive_field_errors():
    model = random_cnn()
    images = np.zeros((1, 31, 26, 2), np.float32)
    with pytest.raises(ValueError, match="must be in \\[0, 5\\)"):
        empirical_receptive_field(model, "top", 5, images)
    with pytest.raises(TypeError, match="`channel` must be an integer"):
        empirical_receptive_field(model, "top", "0", images)
    with pytest.raises(ValueError, match="Closest layer names: top"):
        empirical_receptive_field(model, "topp", 0, images)
    with pytest.raises(ValueError, match="must have rank 4"):
        empirical_receptive_field(model, "top", 0, images[0])
    with pytest.raises(ValueError, match="must be images of shape"):
        empirical_receptive_field(model, "top", 0, images[..., :1])
    with pytest.raises(ValueError, match="`interpolation` must be one of"):
        empirical_receptive_field(model, "top", 0, images, interpolation="cubic")
    head = keras.Model(model.inputs, L.Dense(2, name="d")(L.Flatten()(model.output)))
    with pytest.raises(ValueError, match="'d' has no spatial output"):
        empirical_receptive_field(head, "d", 0, images)
