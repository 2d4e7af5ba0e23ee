"""Shared pieces of the serving tests: tiny models for Keras 3 and tf_keras,
and running exported signatures in a fresh process."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np

from keras_interp import explain, methods
from keras_interp.shortcuts import prepare

SIZE, CLASSES = 12, 3
FRESH = pathlib.Path(__file__).with_name("fresh_process.py")


def nested_model(framework, seed: int = 0):
    """A nested Sequential backbone (conv, conv, BN, ReLU6) and a softmax head."""
    framework.utils.set_random_seed(seed)
    layers = framework.layers
    backbone = framework.Sequential(
        [
            framework.Input((SIZE, SIZE, 3)),
            layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
            layers.Conv2D(6, 3, strides=2, padding="same", name="c2"),
            layers.BatchNormalization(name="bn"),
            layers.ReLU(6.0, name="r2"),
        ],
        name="backbone",
    )
    inputs = framework.Input((SIZE, SIZE, 3), name="images")
    x = layers.GlobalAveragePooling2D(name="gap")(backbone(inputs))
    outputs = layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return framework.Model(inputs, outputs, name="nested")


def flat_model(framework, seed: int = 0):
    """conv(relu) -> conv -> ReLU6 -> GAP -> Dense logits, no softmax."""
    framework.utils.set_random_seed(seed)
    layers = framework.layers
    inputs = framework.Input((SIZE, SIZE, 3), name="images")
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(x)
    x = layers.ReLU(6.0, name="r2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return framework.Model(inputs, layers.Dense(CLASSES, name="logits")(x))


def images(batch: int = 4, seed: int = 0) -> np.ndarray:
    """Images `(batch, 12, 12, 3)` in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")


def run_fresh(jobs: list[dict], tmp_path: pathlib.Path) -> None:
    """Run `fresh_process.py` on `jobs` in a new Python process."""
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs))
    result = subprocess.run(
        [sys.executable, str(FRESH), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def signature_outputs(directory, signature, inputs, tmp_path, tag=""):
    """A job computing `signature(**inputs)`, and the path of its outputs."""
    name = f"{pathlib.Path(directory).name}_{signature}{tag}"
    np.savez(tmp_path / f"{name}_in.npz", **inputs)
    job = {
        "dir": str(directory),
        "signature": signature,
        "inputs": str(tmp_path / f"{name}_in.npz"),
        "outputs": str(tmp_path / f"{name}_out.npz"),
    }
    return job, tmp_path / f"{name}_out.npz"


def reference(model, spec, x, classes, options):
    """`keras_interp.explain` in this process, as the export should compute."""
    function = methods.get(spec)
    return explain(function, prepare(model, spec), x, classes, verbose=0, **options)


def close(actual, expected, what, rtol=1e-4):
    """Equal within float32 tolerance, relative to the largest value."""
    expected = np.asarray(expected)
    scale = max(float(np.max(np.abs(expected))), 1e-3)
    np.testing.assert_allclose(
        actual, expected, rtol=rtol, atol=rtol * 0.2 * scale, err_msg=what
    )
