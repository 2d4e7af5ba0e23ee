"""A toy task with a known answer for Leap's prototypes, entanglement and
isolation tests: 32x32 images of Gaussian noise (mean 0.4) carrying coloured
8x8 squares at random places.

Class 0: a red square; 1: a green square; 2: a blue square; 3: a blue AND a
green square (so class 3 shares its features with classes 1 and 2). 15 % of the
training images carry no square and a uniform label, so the model is unsure
on plain backgrounds and only the squares carry evidence. The CNN (two 3x3
convolutions, global average pooling, dense) trains to 100 % test accuracy in
a few seconds; it is trained once per test session (`functools.cache`).
"""

from __future__ import annotations

import functools

import keras
import numpy as np

SIZE = 32
NAMES = ["red", "green", "blue", "blue+green"]
COLOURS = np.eye(3, dtype=np.float32)  # red, green, blue
PARTS = {0: [0], 1: [1], 2: [2], 3: [2, 1]}
BACKGROUND = 0.4


def make_data(n: int, seed: int = 0, empty: float = 0.0):
    """`(images (n, 32, 32, 3), labels (n,), squares (n, 32, 32) bool,
    soft labels (n, 4))`."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, SIZE, SIZE, 3))
    images = np.clip(BACKGROUND + 0.15 * noise, 0, 1).astype(np.float32)
    labels = rng.integers(0, 4, n)
    squares = np.zeros((n, SIZE, SIZE), bool)
    soft = np.eye(4, dtype=np.float32)[labels]
    for i in range(n):
        if rng.uniform() < empty:
            soft[i] = 0.25
            continue
        for colour in PARTS[int(labels[i])]:
            while True:  # squares do not touch
                r, c = rng.integers(0, SIZE - 8 + 1, 2)
                if not squares[i, max(r - 1, 0) : r + 9, max(c - 1, 0) : c + 9].any():
                    break
            images[i, r : r + 8, c : c + 8] = COLOURS[colour]
            squares[i, r : r + 8, c : c + 8] = True
    return images, labels, squares, soft


@functools.cache
def trained_model() -> keras.Model:
    """The toy CNN, trained (about 5 s on 2 CPU cores)."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            layers.Conv2D(16, 3, activation="relu", padding="same", name="conv1"),
            layers.Conv2D(32, 3, activation="relu", padding="same", name="conv2"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(4, name="logits"),
        ]
    )
    images, _, _, soft = make_data(2000, seed=0, empty=0.15)
    model.compile(
        keras.optimizers.Adam(5e-3),
        keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    model.fit(images, soft, epochs=6, batch_size=64, verbose=0)
    return model


def accuracy(model: keras.Model) -> float:
    images, labels, _, _ = make_data(300, seed=1)
    return float((model.predict(images, verbose=0).argmax(-1) == labels).mean())
