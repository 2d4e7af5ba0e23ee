"""Small models, data and event-file readers shared by the callback tests."""

from __future__ import annotations

import pathlib

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from keras_interp.methods import gradients

SIZE, CLASSES = 16, 3


def small_cnn(framework=keras, seed=0):
    """Conv -> global average pooling -> Dense logits, Keras 3 or tf_keras."""
    layers = framework.layers
    init = framework.initializers.GlorotUniform(seed=seed)
    model = framework.Sequential(
        [
            framework.Input((SIZE, SIZE, 3)),
            layers.Conv2D(
                6, 3, padding="same", activation="relu", name="conv",
                kernel_initializer=init,
            ),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(CLASSES, name="logits", kernel_initializer=init),
        ]
    )  # fmt: skip
    model.compile(
        framework.optimizers.Adam(1e-2),
        framework.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, SIZE, SIZE, 3), dtype=np.float32)
    y = (x[:, :8, :8, 0].mean(axis=(1, 2)) * 6).astype(np.int64) % CLASSES
    return x, y


def read_run(directory) -> dict[str, list]:
    """`{tag: [(step, value)]}` of a run's event files: scalars as floats,
    images as decoded uint8 arrays."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    accumulator = ea.EventAccumulator(
        str(directory), size_guidance={ea.TENSORS: 0, ea.IMAGES: 0, ea.SCALARS: 0}
    )
    accumulator.Reload()
    out: dict[str, list] = {}
    for tag in accumulator.Tags()["tensors"]:
        for event in accumulator.Tensors(tag):
            proto = event.tensor_proto
            if proto.dtype == tf.string.as_datatype_enum and len(proto.string_val) > 2:
                width, height = int(proto.string_val[0]), int(proto.string_val[1])
                image = tf.io.decode_png(proto.string_val[2]).numpy()
                assert image.shape[:2] == (height, width)
                value = image
            elif proto.dtype == tf.string.as_datatype_enum:
                value = tf.make_ndarray(proto)
            else:
                value = float(tf.make_ndarray(proto))
            out.setdefault(tag, []).append((event.step, value))
    return out


class RecordingLogger:
    """A tracker that records what it receives."""

    def __init__(self):
        self.images, self.scalars, self.flushes = [], [], []

    def log_image(self, tag, image, step):
        self.images.append((tag, np.asarray(image).shape, step))

    def log_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self, step):
        self.flushes.append(step)


def runs(log_dir) -> list[str]:
    return sorted(p.name for p in pathlib.Path(log_dir).iterdir() if p.is_dir())


class FakeClock:
    """Seconds that pass only when charged."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def charge(self, seconds: float) -> float:
        self.now += seconds
        return 0.0


CLOCK = FakeClock()  # global, not a closure: the engine keys closures
#: What each part costs on the fake clock (read at run time, not traced).
COSTS = {"fast": 0.2, "slow": 0.6, "forward": 0.1, "base": 0.1, "pixel": 1e-5}


def fast(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    tick = tf.py_function(lambda: CLOCK.charge(COSTS["fast"]), [], tf.float32)
    with tf.control_dependencies([tick]):
        return gradients(model, inputs, indices, spatial_axis=spatial_axis)


def slow(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    tick = tf.py_function(lambda: CLOCK.charge(COSTS["slow"]), [], tf.float32)
    with tf.control_dependencies([tick]):
        return gradients(model, inputs, indices, spatial_axis=spatial_axis)


def charged(callback):
    """Make `callback` read the fake clock and pay for its forward pass."""
    callback.clock = CLOCK
    forward = callback._probabilities

    def paying():
        CLOCK.charge(COSTS["forward"])
        return forward()

    callback._probabilities = paying
    return callback


#: Concept examples for the mirrored run: reddish vs greenish noise, 16 px.
_RNG = np.random.default_rng(5)
REDDISH = (_RNG.random((8, 16, 16, 3), dtype=np.float32) * 0.5) + np.float32(
    [0.5, 0, 0]
)
GREENISH = (_RNG.random((8, 16, 16, 3), dtype=np.float32) * 0.5) + np.float32(
    [0, 0.5, 0]
)
MASKS = np.zeros((4, 16, 16), bool)
MASKS[:, :8, :8] = True


__all__ = [
    "CLOCK", "COSTS", "GREENISH", "MASKS", "REDDISH", "FakeClock",
    "RecordingLogger", "charged", "data", "fast", "read_run", "runs", "slow",
    "small_cnn", "tf_keras",
]  # fmt: skip
