"""CAV: CAVlib's `.cav` format on a real CAVstudio file, atomic saves, scoring."""

from __future__ import annotations

import json
import os
import pathlib
import struct
import uuid

import keras
import msgpack
import numpy as np
import pytest

from keras_interp.concepts import CAV, compute_activations
from keras_interp.models import KerasModel, Model
from keras_interp.models.zoo import GooglenetModel

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "cavlib"
CAVSTUDIO = DATA / "cavstudio_sample.cav"
PHOTO = DATA / "0a8d36f893911e09a257cfaea8a8543a.1x.224x224.png"
STUDIO_ID = uuid.UUID("ea94da81-5b30-4111-af18-8f16db4f61af")


def _tiny_net() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv", kernel_initializer="he_normal")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x), name="tiny")


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    return _tiny_net()


def _random_cav(size: int, model_layer="googlenet_5b", seed: int = 0) -> CAV:
    vector = np.random.RandomState(seed).standard_normal(size).astype(np.float32)
    return CAV(uuid.uuid4(), vector / np.linalg.norm(vector), model_layer)


# -- the real CAVstudio file ----------------------------------------------------------
def test_cavstudio_file_loads():
    cav = CAV.load(CAVSTUDIO)
    assert cav.id == STUDIO_ID and cav.model_layer == "googlenet_4d"
    assert cav.vector.shape == (103_488,) and cav.vector.dtype == np.float64
    # float64 in memory (as CAVlib), holding exactly the file's float32 values
    np.testing.assert_array_equal(cav.vector.astype(np.float32), cav.vector)
    assert np.linalg.norm(cav.vector) == pytest.approx(1.0, abs=1e-5)
    assert dict(cav.metadata) == {}
    stats = cav.extra["stats"]
    assert set(stats) == {"mean", "stddev", "max", "min", "top_5_mean"}
    assert stats["max"] == pytest.approx(0.2406160235)


def _vector_bytes(raw: bytes) -> bytes:
    """The msgpack encoding of the `vector` entry (the file's first key)."""
    header = b"\xa6vector\xdd"  # fixstr "vector", then array32
    start = raw.index(header) + len(header)
    (count,) = struct.unpack(">I", raw[start : start + 4])
    return raw[start - 1 : start + 4 + 5 * count]


def test_stats_survive_save_and_load_byte_for_byte(tmp_path):
    path = tmp_path / "copy.cav"
    CAV.load(CAVSTUDIO).save(path)
    raw = path.read_bytes()
    data = msgpack.unpackb(raw)
    assert list(data) == ["vector", "id", "model_layer", "metadata", "stats"]
    assert data["stats"] == msgpack.unpackb(CAVSTUDIO.read_bytes())["stats"]
    vector = _vector_bytes(raw)
    assert vector[0] == 0xDD and struct.unpack(">I", vector[1:5]) == (103_488,)
    assert set(vector[5::5]) == {0xCA}  # every value a float32
    assert vector == _vector_bytes(CAVSTUDIO.read_bytes())  # the same bytes
    again = CAV.load(path)
    assert again.id == STUDIO_ID and dict(again.extra) == dict(
        CAV.load(CAVSTUDIO).extra
    )
    again.save(path)
    assert path.read_bytes() == raw


def test_round_trip_googlenet_5b(tmp_path):
    cav = _random_cav(50_176, "googlenet_5b")
    cav.save(tmp_path / "r.cav")
    raw = (tmp_path / "r.cav").read_bytes()
    assert raw.startswith(b"\x84\xa6vector\xdc" + struct.pack(">H", 50_176))
    again = CAV.load(tmp_path / "r.cav")
    assert (again.id, again.model_layer) == (cav.id, "googlenet_5b")
    np.testing.assert_array_equal(again.vector, cav.vector)


def test_round_trip_32000_floats_on_a_user_layer(tmp_path):
    cav = _random_cav(32_000, "backbone/out_relu", seed=1)
    cav.save(tmp_path / "u.cav")
    again = CAV.load(tmp_path / "u.cav")
    assert (again.id, again.model_layer) == (cav.id, "backbone/out_relu")
    np.testing.assert_array_equal(again.vector, cav.vector)


def test_float64_vector_is_saved_as_float32(tmp_path):
    vector = np.random.RandomState(2).standard_normal(100)
    CAV(uuid.uuid4(), vector, "layer").save(tmp_path / "f.cav")
    loaded = CAV.load(tmp_path / "f.cav").vector
    np.testing.assert_array_equal(loaded, vector.astype(np.float32))


def test_config_round_trip_and_json():
    cav = CAV(str(uuid.uuid4()), [0.6, 0.8], "layer", {"name": "round", "n": 3})
    config = json.loads(json.dumps(cav.get_config()))
    assert list(config) == ["vector", "id", "model_layer", "metadata"]
    again = CAV.from_config(config)
    assert again.id == cav.id and dict(again.metadata) == {"name": "round", "n": 3}
    np.testing.assert_array_equal(again.vector, cav.vector)


def test_cav_is_immutable():
    cav = CAV(uuid.uuid4(), [1.0, 0.0], "layer", {"a": 1})
    with pytest.raises(ValueError):
        cav.vector[0] = 2.0
    with pytest.raises(TypeError):
        cav.metadata["a"] = 2
    with pytest.raises(AttributeError):
        cav.vector = np.zeros(2)
    with pytest.raises(TypeError):
        cav.extra["stats"] = {}


# -- corrupt and foreign files ----------------------------------------------------
def _packed(data) -> bytes:
    return msgpack.packb(data, use_single_float=True)


_GOOD = {"vector": [0.6, 0.8], "id": str(STUDIO_ID), "model_layer": "layer"}

BAD_FILES = {
    "truncated": (lambda: CAVSTUDIO.read_bytes()[:200_000], ValueError, "not a valid"),
    "empty": (lambda: b"", ValueError, "not a valid"),
    "png": (lambda: PHOTO.read_bytes(), ValueError, "not a valid"),
    "list": (lambda: _packed([1.0, 2.0]), TypeError, "holds a list"),
    "no vector": (
        lambda: _packed({k: v for k, v in _GOOD.items() if k != "vector"}),
        ValueError,
        "missing vector",
    ),
    "2-D vector": (
        lambda: _packed({**_GOOD, "vector": [[1.0], [2.0]]}),
        ValueError,
        "1-D",
    ),
    "ragged": (lambda: _packed({**_GOOD, "vector": [[1.0], []]}), ValueError, "1-D"),
    "wrong length": (
        lambda: _packed({**_GOOD, "model_layer": "googlenet_4d"}),
        ValueError,
        "has 103488 values",
    ),
    "strings": (lambda: _packed({**_GOOD, "vector": ["a", "b"]}), TypeError, "real"),
    "bad id": (lambda: _packed({**_GOOD, "id": "round"}), ValueError, "UUID"),
    "layer int": (lambda: _packed({**_GOOD, "model_layer": 4}), TypeError, "string"),
    "metadata list": (lambda: _packed({**_GOOD, "metadata": [1]}), TypeError, "map"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_errors_name_the_path(tmp_path, case):
    content, error, message = BAD_FILES[case]
    path = tmp_path / "bad.cav"
    path.write_bytes(content())
    with pytest.raises(error, match=message) as info:
        CAV.load(path)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="Received: path=.*nothing.cav"):
        CAV.load(DATA / "nothing.cav")


def test_save_errors_name_the_users_path_not_the_temporary_file(tmp_path):
    cav = CAV(uuid.uuid4(), [1.0, 0.0], "layer")
    target = tmp_path / "missing_folder" / "concept.cav"
    with pytest.raises(FileNotFoundError) as info:
        cav.save(target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    assert info.value.errno == 2
    bad = CAV(uuid.uuid4(), [0.0, 1.0], "layer", {"bad": object()})
    with pytest.raises(TypeError) as info:
        bad.save(tmp_path / "c.cav")
    assert "c.cav" in str(info.value) and ".tmp" not in str(info.value)


def test_stale_temporary_files_of_a_killed_save_are_removed(tmp_path):
    from keras_interp.concepts.cav_file import STALE_SECONDS

    path = tmp_path / "concept.cav"
    stale = tmp_path / ".concept.cav.0123456789ab.tmp"  # as a killed save leaves
    fresh = tmp_path / ".concept.cav.ba9876543210.tmp"  # a save in progress
    other = tmp_path / ".other.cav.0123456789ab.tmp"  # another file's
    for leftover in (stale, fresh, other):
        leftover.write_bytes(b"partial")
        if leftover != fresh:
            old = leftover.stat().st_mtime - STALE_SECONDS - 5
            os.utime(leftover, (old, old))
    CAV(uuid.uuid4(), [1.0, 0.0], "layer").save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [fresh.name, other.name, "concept.cav"]
    )
    assert CAV.load(path).vector.tolist() == [1.0, 0.0]


# -- atomic save ----------------------------------------------------------------------
def _fail_midway(data, stream, **kwargs):
    stream.write(msgpack.packb(data, **kwargs)[:1000])
    raise OSError("disk full")


@pytest.mark.parametrize("where", ["pack", "fsync", "replace"])
def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch, where):
    path = tmp_path / "concept.cav"
    CAV.load(CAVSTUDIO).save(path)
    before = path.read_bytes()
    if where == "pack":
        monkeypatch.setattr(msgpack, "pack", _fail_midway)
    else:
        monkeypatch.setattr(os, where, lambda *a: (_ for _ in ()).throw(OSError(where)))
    with pytest.raises(OSError):
        _random_cav(50_176).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["concept.cav"]
    assert CAV.load(path).id == STUDIO_ID


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(msgpack, "pack", _fail_midway)
    with pytest.raises(OSError, match="disk full"):
        _random_cav(1000).save(tmp_path / "new.cav")
    assert os.listdir(tmp_path) == []


def test_unpackable_metadata_keeps_the_previous_file(tmp_path):
    path = tmp_path / "c.cav"
    CAV(uuid.uuid4(), [1.0, 0.0], "layer").save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        CAV(uuid.uuid4(), [0.0, 1.0], "layer", {"bad": object()}).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.cav"]


def test_save_keeps_permissions(tmp_path):
    path = tmp_path / "p.cav"
    CAV(uuid.uuid4(), [1.0], "layer").save(path)
    os.chmod(path, 0o640)
    CAV(uuid.uuid4(), [2.0], "layer").save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# -- construction errors ---------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"id": 3}, TypeError, "`id`"),
        ({"vector": []}, ValueError, "non-empty 1-D"),
        ({"vector": np.ones((2, 2))}, ValueError, "non-empty 1-D"),
        ({"vector": [1.0, np.nan]}, ValueError, "finite"),
        ({"vector": [True, False]}, TypeError, "real numbers"),
        ({"model_layer": 5}, TypeError, "`model_layer`"),
        ({"model_layer": ""}, TypeError, "`model_layer`"),
        ({"metadata": [1]}, TypeError, "`metadata`"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    args = {"id": uuid.uuid4(), "vector": [1.0, 0.0], "model_layer": "layer"}
    with pytest.raises(error, match=message) as info:
        CAV(**{**args, **kwargs})
    assert "Received:" in str(info.value)


def test_unknown_layer_of_a_pair(net):
    with pytest.raises(ValueError, match="cnv"):
        CAV(uuid.uuid4(), [1.0], (KerasModel(net), "cnv"))


# -- scoring -----------------------------------------------------------------------
def test_score_is_cosine_similarity():
    cav = CAV(uuid.uuid4(), [3.0, 4.0, 0.0], "layer")
    assert cav.score(np.array([4.0, 3.0, 0.0], np.float32)) == pytest.approx(24 / 25)
    assert cav.score(np.array([-3.0, -4.0, 0.0])) == pytest.approx(-1.0)
    assert cav.score(np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="activation of 4 values but the CAV has 3"):
        cav.score(np.ones(4))
    assert cav.sort([np.array([0, 1, 0.0]), np.array([1, 0, 0.0])])[0][0] == 1


def test_score_image_on_a_keras_model(net):
    model = KerasModel(net)
    cav = _random_cav(6 * 6 * 4, (model, "conv"))
    image = np.random.RandomState(3).rand(8, 8, 3).astype(np.float32)
    activation = compute_activations(image, (model, "conv"))
    assert cav.score(image) == cav.score(activation)
    expected = activation @ cav.vector / np.linalg.norm(activation)
    assert cav.score(image) == pytest.approx(expected, rel=1e-6)
    inputs = keras.Input((10, 10, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs))
    with pytest.raises(ValueError, match="256 values but the CAV has 144"):
        cav.score(image, model=other)


def test_user_model_cav_saved_and_given_back(tmp_path, net):
    model = KerasModel(net, input_value_range=(-1, 1))
    cav = _random_cav(144, (model, net.get_layer("conv")))
    assert cav.model_layer == (model, "conv") and cav.model is model
    path = tmp_path / "user.cav"
    cav.save(path)
    data = msgpack.unpackb(path.read_bytes())
    assert data["model_layer"] == "conv"
    assert data["model"] == {
        "class": "KerasModel",
        "name": "tiny",
        "input_value_range": [-1.0, 1.0],
        "image_size": 8,
    }
    image = np.random.RandomState(4).rand(8, 8, 3)
    loaded = CAV.load(path)
    assert loaded.model_layer == "conv" and loaded.model is None
    with pytest.raises(ValueError, match=r"model=\.\.\."):
        loaded.score(image)
    expected = cav.score(image)
    assert loaded.score(image, model=model) == pytest.approx(expected, abs=1e-6)
    bound = CAV.load(path, model=net)  # a raw Keras model: the recorded range
    assert bound.model.input_value_range == (-1.0, 1.0)
    assert bound.score(image) == pytest.approx(expected, abs=1e-6)
    bound.save(tmp_path / "again.cav")
    assert (
        msgpack.unpackb((tmp_path / "again.cav").read_bytes())["model"]
        == (data["model"])
    )


def test_scores_and_sort_batch_like_score(net):
    model = KerasModel(net)
    cav = _random_cav(144, (model, "conv"), seed=5)
    rng = np.random.RandomState(6)
    images = [rng.rand(8, 8, 3).astype(np.float32) for _ in range(5)]
    images.append(compute_activations(images[0], (model, "conv")))
    single = np.array([cav.score(im) for im in images])
    np.testing.assert_allclose(cav.scores(images, batch_size=2), single, atol=1e-6)
    ranked = cav.sort(images, reverse=True)
    assert [cav.score(im) for im in ranked] == sorted(single, reverse=True)
    assert len(cav.sort(images)) == 6


class _LocalGooglenet(GooglenetModel):
    """A GooglenetModel without its graph: enough to name its layers."""

    def __init__(self):
        Model.__init__(self, None, (-117, 138))

    output_layer_names = property(lambda self: ["mixed4d", "mixed5b"])
    check_layer = Model.check_layer


def test_cavlib_pair_is_written_as_cavlib_string(tmp_path):
    local = _LocalGooglenet()
    cav = _random_cav(103_488, (local, "mixed4d"))
    assert cav.layer_name == "googlenet_4d"
    cav.save(tmp_path / "g.cav")
    data = msgpack.unpackb((tmp_path / "g.cav").read_bytes())
    assert data["model_layer"] == "googlenet_4d" and "model" not in data
    studio = CAV.load(CAVSTUDIO, model=local)  # CAVlib's layer, this model
    assert studio.model_layer == (local, "mixed4d") and studio.model is local
    assert "stats" in studio.extra
