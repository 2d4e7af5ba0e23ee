"""Fixtures of the model tests: the frozen graphs of `frozen_graphs.py` written
to a temporary directory once per session, the models loading them, a real
photo, and an environment where nothing is downloaded."""

from __future__ import annotations

import pathlib

import pytest
from frozen_graphs import (
    CAVLIB_DATA,
    PHOTO,
    googlenet_function,
    mobilenet_function,
    write_graph,
)


@pytest.fixture(scope="session")
def googlenet_net():
    return googlenet_function()


@pytest.fixture(scope="session")
def mobilenet_net():
    return mobilenet_function()


@pytest.fixture(scope="session")
def googlenet_pb(tmp_path_factory, googlenet_net) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("googlenet")
    return write_graph(googlenet_net, folder / "tensorflow_inception_graph.pb")


@pytest.fixture(scope="session")
def mobilenet_pb(tmp_path_factory, mobilenet_net) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("mobilenet")
    return write_graph(mobilenet_net, folder / "mobilenet_v1_1.0_224_frozen.pb")


@pytest.fixture(scope="session")
def googlenet(googlenet_pb):
    from keras_interp.models import GooglenetModel

    return GooglenetModel(model_path=googlenet_pb)


@pytest.fixture(scope="session")
def mobilenet(mobilenet_pb):
    from keras_interp.models import MobilenetModel

    return MobilenetModel(model_path=mobilenet_pb)


@pytest.fixture(scope="session")
def photo_path(tmp_path_factory) -> pathlib.Path:
    """CAVlib's 224x224 test photo when tests/data/cavlib has it, else a real
    photo (skimage's chelsea, 300x451) written as PNG."""
    if (CAVLIB_DATA / PHOTO).is_file():
        return CAVLIB_DATA / PHOTO
    import PIL.Image
    import skimage.data

    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    PIL.Image.fromarray(skimage.data.chelsea()).save(path)
    return path


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test sees the user's cache or graph paths (nothing is downloaded),
    and the shared models are rebuilt for each test."""
    from keras_interp.models import zoo

    monkeypatch.setenv("KERAS_INTERP_CACHE", str(tmp_path / "cache"))
    for name in ("KERAS_INTERP_GOOGLENET_PATH", "KERAS_INTERP_MOBILENET_PATH"):
        monkeypatch.delenv(name, raising=False)
    zoo.clear_model_cache()
    yield
    zoo.clear_model_cache()
