"""Small models, data and event-file readers shared by the callback tests."""

from __future__ import annotations

import pathlib

import keras
import numpy as np
import tensorflow as tf
import tf_keras

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


__all__ = ["RecordingLogger", "data", "read_run", "runs", "small_cnn", "tf_keras"]
