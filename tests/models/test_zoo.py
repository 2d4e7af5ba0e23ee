"""GooglenetModel, MobilenetModel, CAVlib's layer strings and the graph files.

The graphs are the stand-ins of `conftest.py` (real names and shapes); the real
graphs are compared with CAVlib's reference activations only when the
environment points to them.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import tarfile
import zipfile

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from frozen_graphs import CAVLIB_DATA, MOBILENET_12D, PHOTO, REAL_GRAPHS

from keras_interp.models import (
    MODEL_LAYERS,
    ChecksumError,
    DownloadError,
    FrozenGraphModel,
    GooglenetModel,
    KerasModel,
    MobilenetModel,
    download,
    resolve_model_layer,
)

SIZES = {"mixed4d": 103_488, "mixed5b": 50_176, MOBILENET_12D: 25_088}
SHAPES = {"mixed4d": (14, 14, 528), "mixed5b": (7, 7, 1024), MOBILENET_12D: (7, 7, 512)}


def image_kinds(path: pathlib.Path):
    """The same photo as every kind of image CAVlib accepts."""
    pixels = np.asarray(PIL.Image.open(path).convert("RGB"))
    with open(path, "rb") as file:
        yield "str", str(path)
        yield "Path", path
        yield "open file", file
    yield "PIL", PIL.Image.open(path)
    yield "uint8", pixels
    yield "float", pixels.astype(np.float32) / 255


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("layer", ["mixed4d", "mixed5b"])
def test_googlenet_sizes_for_every_image_kind(googlenet, photo_path, layer):
    values = {}
    for kind, image in image_kinds(photo_path):
        values[kind] = googlenet.get_activation_for_image(image, layer)
        assert values[kind].shape == (SIZES[layer],), kind
        assert values[kind].dtype == np.float32
    for kind, value in values.items():
        np.testing.assert_array_equal(value, values["str"], err_msg=kind)
    assert np.count_nonzero(values["str"]) > SIZES[layer] // 10


def test_mobilenet_sizes_for_every_image_kind(mobilenet, photo_path):
    values = [
        mobilenet.get_activation_for_image(image, MOBILENET_12D)
        for _, image in image_kinds(photo_path)
    ]
    assert all(v.shape == (SIZES[MOBILENET_12D],) for v in values)
    for value in values[1:]:
        np.testing.assert_array_equal(value, values[0])


def test_layer_names_and_one_pass(googlenet, mobilenet, photo_path):
    assert googlenet.output_layer_names == [
        "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c",
        "mixed4d", "mixed4e", "mixed5a", "mixed5b",
    ]  # fmt: skip
    assert MOBILENET_12D in mobilenet.output_layer_names
    assert len(mobilenet.output_layer_names) == 27  # Conv2d_0 + 13 x (dw, pw)
    both = googlenet.get_multiple_activations_for_image(
        photo_path, ["mixed4d", "mixed5b"]
    )
    for layer, value in both.items():
        single = googlenet.get_activation_for_image(photo_path, layer)
        np.testing.assert_array_equal(value, single)
    for layer, shape in SHAPES.items():
        model = mobilenet if layer == MOBILENET_12D else googlenet
        x = tf.constant(model.prepare(photo_path))
        assert tuple(model.layer_outputs(x, [layer])[0].shape) == (1, *shape)


def test_input_value_range_is_applied(
    googlenet, mobilenet, googlenet_net, mobilenet_net
):
    pixels = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    assert googlenet.input_value_range == (-117.0, 138.0)
    assert mobilenet.input_value_range == (0.0, 1.0)
    np.testing.assert_allclose(googlenet.prepare(pixels[0])[0], pixels[0] * 255 - 117)
    # The graphs' own softmax, computed by the tf.function that wrote them.
    expected = googlenet_net(tf.constant(pixels * 255 - 117))
    scores = googlenet.exposed()(pixels)
    np.testing.assert_allclose(tf.nn.softmax(scores), expected, atol=1e-6)
    expected = mobilenet_net(tf.constant(pixels))
    np.testing.assert_allclose(
        tf.nn.softmax(mobilenet.exposed()(pixels)), expected, atol=1e-6
    )
    assert googlenet.exposed()(pixels).shape == (2, 1008)
    assert mobilenet.exposed()(pixels).shape == (2, 1001)


def test_gradients_flow(googlenet, mobilenet, photo_path):
    for model, layer in ((googlenet, "mixed4d"), (mobilenet, MOBILENET_12D)):
        x = tf.constant(model.prepare(photo_path))
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, activations = model.logits_and_layer(x, layer)
            score = logits[:, 3]
        d_activations, d_x = tape.gradient(score, [activations, x])
        assert d_activations.shape == activations.shape
        assert float(tf.reduce_max(tf.abs(d_activations))) > 0
        assert float(tf.reduce_max(tf.abs(d_x))) > 0


def test_gradcam_and_saliency_on_googlenet(googlenet):
    from keras_interp import methods

    pixels = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    logits, maps = methods.gradcam(googlenet.exposed("mixed5b"), pixels, [[5], [9]])
    assert logits.shape == (2, 1) and maps.shape == (2, 7, 7, 1)
    assert np.all(np.isfinite(maps)) and np.any(maps != 0)
    logits, maps = methods.gradients(googlenet.exposed(), pixels, [[5], [9]])
    assert maps.shape == (2, 224, 224, 1) and np.any(maps != 0)


def test_labels(googlenet, mobilenet, googlenet_pb, tmp_path):
    assert len(googlenet.labels) == 1008 and googlenet.labels[0] == "dummy"
    assert len(mobilenet.labels) == 1001 and mobilenet.labels[0] == "background"
    folder = tmp_path / "inception5h"
    folder.mkdir()
    (folder / googlenet_pb.name).write_bytes(googlenet_pb.read_bytes())
    names = ["dummy"] + [f"class {i}" for i in range(1, 1008)]
    (folder / "imagenet_comp_graph_label_strings.txt").write_text("\n".join(names))
    assert GooglenetModel(folder / googlenet_pb.name).labels == names


# ------------------------------------------------- environment and strings
def test_environment_variables_and_strings(monkeypatch, googlenet_pb, mobilenet_pb):
    monkeypatch.setenv("KERAS_INTERP_GOOGLENET_PATH", str(googlenet_pb))
    monkeypatch.setenv("KERAS_INTERP_MOBILENET_PATH", str(mobilenet_pb))
    assert set(MODEL_LAYERS) == {"googlenet_4d", "googlenet_5b", "mobilenet_12d"}
    model, layer = resolve_model_layer("googlenet_4d")
    assert isinstance(model, GooglenetModel) and layer == "mixed4d"
    assert model.model_path == googlenet_pb
    same, layer = resolve_model_layer("googlenet_5b")
    assert same is model and layer == "mixed5b"
    mobile, layer = resolve_model_layer("mobilenet_12d")
    assert isinstance(mobile, MobilenetModel) and layer == MOBILENET_12D
    assert (
        mobile.get_activation_for_image(np.zeros((224, 224, 3)), layer).size == 25_088
    )
    assert GooglenetModel().model_path == googlenet_pb
    monkeypatch.setenv("KERAS_INTERP_GOOGLENET_PATH", str(mobilenet_pb))
    with pytest.raises(ValueError, match="not the inception5h"):
        resolve_model_layer("googlenet_4d")  # a new setting: a new model


def test_pairs(googlenet):
    import keras

    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3, name="conv")]
    )
    wrapped, layer = resolve_model_layer((model, "conv"))
    assert isinstance(wrapped, KerasModel) and layer == "conv"
    assert wrapped.input_value_range == (0.0, 1.0)
    assert resolve_model_layer((model, 0))[0] is wrapped  # cached wrapper
    assert resolve_model_layer((model, 0))[1] == "conv"
    keras_model = KerasModel(model, (-1, 1))
    assert resolve_model_layer([keras_model, "conv"]) == (keras_model, "conv")
    assert resolve_model_layer((googlenet, "mixed4e")) == (googlenet, "mixed4e")
    with pytest.raises(ValueError, match="Unknown layer name 'mixed9z'"):
        resolve_model_layer((googlenet, "mixed9z"))


@pytest.mark.parametrize(
    "value", ["googlenet_4e", "GOOGLENET_4D", None, 3, ("googlenet",), object()]
)
def test_bad_model_layer(value):
    with pytest.raises(ValueError, match="'googlenet_4d', 'googlenet_5b'") as info:
        resolve_model_layer(value)
    assert "Received: model_layer=" in str(info.value)


def test_unknown_layer(googlenet):
    with pytest.raises(ValueError, match=r"Unknown layer name 'mixed4f'.*mixed4"):
        googlenet.get_activation_for_image(np.zeros((224, 224, 3)), "mixed4f")


# ---------------------------------------------------- files and downloads
def test_missing_files_name_their_source(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="`model_path` must name an existing"):
        GooglenetModel(model_path=tmp_path / "missing.pb")
    monkeypatch.setenv("KERAS_INTERP_MOBILENET_PATH", str(tmp_path / "none.pb"))
    with pytest.raises(FileNotFoundError, match="KERAS_INTERP_MOBILENET_PATH"):
        MobilenetModel()


def test_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    url = "http://127.0.0.1:9/inception5h.zip"  # the discard port: refused
    source = dataclasses.replace(download.SOURCES["googlenet"], url=url)
    monkeypatch.setitem(download.SOURCES, "googlenet", source)
    with pytest.raises(DownloadError) as info:
        resolve_model_layer("googlenet_4d")
    message = str(info.value)
    expected = tmp_path / "cache" / "googlenet" / "tensorflow_inception_graph.pb"
    assert url in message and str(expected) in message
    assert "KERAS_INTERP_GOOGLENET_PATH" in message and "model_path=" in message
    assert not list((tmp_path / "cache" / "googlenet").iterdir())  # no leftovers


def _serve(monkeypatch, payload: bytes) -> list:
    """Make urlopen return `payload` (no network), recording the URLs asked."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    return asked


def test_download_extracts_records_and_verifies(monkeypatch, tmp_path, googlenet_pb):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tensorflow_inception_graph.pb", googlenet_pb.read_bytes())
        z.writestr("imagenet_comp_graph_label_strings.txt", "dummy\n" * 1008)
        z.writestr("LICENSE", "Apache License 2.0")
    asked = _serve(monkeypatch, archive.getvalue())
    model = GooglenetModel()
    assert asked == [download.SOURCES["googlenet"].url]
    cached = tmp_path / "cache" / "googlenet" / "tensorflow_inception_graph.pb"
    assert (
        model.model_path == cached and cached.read_bytes() == googlenet_pb.read_bytes()
    )
    note = cached.with_name(cached.name + ".sha256").read_text()
    assert note.split()[0] == download.sha256_of(googlenet_pb)
    assert model.labels == ["dummy"] * 1008
    assert sorted(p.name for p in cached.parent.iterdir()) == [
        "LICENSE",
        "imagenet_comp_graph_label_strings.txt",
        "tensorflow_inception_graph.pb",
        "tensorflow_inception_graph.pb.sha256",
    ]
    GooglenetModel()  # from the cache, verified against the note
    assert len(asked) == 1
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ChecksumError, match="corrupt or was replaced"):
        GooglenetModel()


def test_download_tgz_and_recorded_digest(monkeypatch, mobilenet_pb):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = mobilenet_pb.read_bytes()
        info = tarfile.TarInfo("./mobilenet_v1_1.0_224_frozen.pb")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _serve(monkeypatch, archive.getvalue())
    source = dataclasses.replace(download.SOURCES["mobilenet"], sha256="0" * 64)
    monkeypatch.setitem(download.SOURCES, "mobilenet", source)
    with pytest.raises(ChecksumError, match="not the recorded 0000"):
        MobilenetModel()
    digest = download.sha256_of(mobilenet_pb)
    source = dataclasses.replace(source, sha256=digest)
    monkeypatch.setitem(download.SOURCES, "mobilenet", source)
    assert MobilenetModel().get_activation_for_image(
        np.zeros((224, 224, 3)), MOBILENET_12D
    ).shape == (25_088,)


def test_bad_archive(monkeypatch, tmp_path):
    _serve(monkeypatch, b"<html>a captive portal page</html>")
    with pytest.raises(DownloadError, match="cannot be read.*neither a zip nor a tar"):
        MobilenetModel()
    assert not list((tmp_path / "cache" / "mobilenet").iterdir())  # no leftovers


def test_sha256_note_mismatch_beside_model_path(tmp_path, googlenet_pb):
    path = tmp_path / googlenet_pb.name
    path.write_bytes(googlenet_pb.read_bytes())
    note = path.with_name(path.name + ".sha256")
    note.write_text(download.sha256_of(path) + "  x\n")
    assert GooglenetModel(model_path=path).model_path == path
    note.write_text("ab" * 32 + "  x\n")
    with pytest.raises(ChecksumError, match=r"abab.*Received: path="):
        GooglenetModel(model_path=path)


def test_not_the_right_graph(googlenet_pb, mobilenet_pb):
    with pytest.raises(ValueError, match="not the MobileNet v1 frozen graph"):
        MobilenetModel(model_path=googlenet_pb)


# ------------------------------------------------------ the real graphs
def _reference(name: str, layer_key: str) -> np.ndarray:
    if not REAL_GRAPHS[name]:
        env = f"KERAS_INTERP_{name.upper()}_PATH"
        pytest.skip(f"{env} is not set: the real {name} frozen graph is a download")
    path = CAVLIB_DATA / PHOTO.replace("224x224.png", f"{layer_key}.npy")
    if not path.is_file() or not (CAVLIB_DATA / PHOTO).is_file():
        pytest.skip(f"CAVlib's reference data is not in {CAVLIB_DATA}")
    return np.load(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, model_layer",
    [("googlenet", "googlenet_4d"), ("googlenet", "googlenet_5b"),
     ("mobilenet", "mobilenet_12d")],
)  # fmt: skip
def test_real_graphs_match_cavlib(monkeypatch, name, model_layer):
    expected = _reference(name, model_layer)
    monkeypatch.setenv(f"KERAS_INTERP_{name.upper()}_PATH", REAL_GRAPHS[name])
    model, layer = resolve_model_layer(model_layer)
    pixels = np.asarray(PIL.Image.open(CAVLIB_DATA / PHOTO).convert("RGB"))
    for image in (pixels, pixels.astype(np.float32) / 255, CAVLIB_DATA / PHOTO):
        actual = model.get_activation_for_image(image, layer)
        assert actual.shape == expected.shape
        cosine = actual @ expected / np.linalg.norm(actual) / np.linalg.norm(expected)
        assert cosine >= 0.999
        assert np.linalg.norm(actual - expected) < 0.1
    assert isinstance(model, FrozenGraphModel)
