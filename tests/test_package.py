"""The package surface: every advertised name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.mark.slow
def test_public_names_are_typed_for_mypy(tmp_path):
    """`keras_interp.__all__` is typed: mypy knows every name and catches typos."""
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import keras_interp as ki\n"
        "reveal_type(ki.gradcam)\n"
        "ki.metrics.evaluate\n"
        "ki.gradcamm\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--ignore-missing-imports",
            "--no-error-summary",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = result.stdout.splitlines()
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and ":4:" in errors[0] and "gradcamm" in errors[0], lines
    # A function type, not `Any`: the shortcut is known with its signature.
    assert any(":2:" in line and 'Revealed type is "def' in line for line in lines)
