"""The package surface: every advertised name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import keras_interp


def test_every_public_name_resolves():
    for name in keras_interp.__all__:
        assert getattr(keras_interp, name) is not None, name
    assert keras_interp.saliency is keras_interp.gradients
    assert keras_interp.gradcam.__name__ == "gradcam"
    assert callable(keras_interp.smooth(keras_interp.methods.gradcam))


def test_import_is_cheap():
    # Importing the package must not import TensorFlow (the CLI starts fast).
    code = "import sys, keras_interp; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
