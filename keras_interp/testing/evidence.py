"""A task with known evidence: the class is decided by one object among others.

Each image shows one red *deciding* object whose shape is the class (disc,
square, cross, triangle, ring, diamond), among `distractors` objects of the
same shapes and size in other colours (blue, green, cyan) whose shapes are
drawn at random and so carry no information about the class, over a real
texture from `skimage.data` (grass, gravel, brick; bundled with
scikit-image, nothing is downloaded). `masks` marks the deciding object's
pixels: a faithful explanation of a model that solved the task points there.

Used by the metrics tests and the quality benchmark
(`benchmarks/quality.py`), the metric callback and the demo.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from keras_interp._validation import check_positive_int, received

#: Shapes by class index.
SHAPES = ("disc", "square", "cross", "triangle", "ring", "diamond")
#: RGB of the deciding object.
TARGET_COLOR = (0.95, 0.12, 0.1)
#: RGB of distractors (no red, so colour tells them from the deciding object).
DISTRACTOR_COLORS = ((0.1, 0.3, 0.95), (0.1, 0.85, 0.2), (0.1, 0.85, 0.85))
#: Textures bundled with scikit-image (loaded without network).
TEXTURES = ("grass", "gravel", "brick")


def shape_mask(kind: str, side: int) -> np.ndarray:
    """The bool mask `(side, side)` of one shape filling a square of `side` px."""
    c = (side - 1) / 2
    dy, dx = np.mgrid[0:side, 0:side].astype(np.float32) - c
    r = side / 2
    if kind == "disc":
        return dy**2 + dx**2 <= r**2
    if kind == "square":
        return (np.abs(dy) <= 0.42 * side) & (np.abs(dx) <= 0.42 * side)
    if kind == "cross":
        arm = side / 6
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= r)) | (
            (np.abs(dx) <= arm) & (np.abs(dy) <= r)
        )
    if kind == "triangle":
        return np.abs(dx) <= (dy + r) / 2 + 0.5
    if kind == "ring":
        distance = dy**2 + dx**2
        return (distance <= r**2) & (distance >= (0.5 * r) ** 2)
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    raise ValueError(f"Unknown shape. {received('kind', kind)}")


@functools.lru_cache(maxsize=1)
def _textures() -> tuple[np.ndarray, ...]:
    import skimage.data

    return tuple(
        getattr(skimage.data, name)().astype(np.float32) / 255.0 for name in TEXTURES
    )


def _background(rng: np.random.Generator, size: int, clutter: bool) -> np.ndarray:
    gain = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if not clutter:
        return np.full((size, size, 3), rng.uniform(0.35, 0.65), np.float32) * gain
    texture = _textures()[rng.integers(len(TEXTURES))]
    crop = 2 * size
    top = rng.integers(texture.shape[0] - crop + 1)
    left = rng.integers(texture.shape[1] - crop + 1)
    patch = texture[top : top + crop, left : left + crop]
    patch = patch.reshape(size, 2, size, 2).mean(axis=(1, 3))  # 2x2 average pool
    gray = 0.2 + 0.6 * patch
    return np.clip(gray[..., None] * gain, 0.0, 1.0)


def _place(
    rng: np.random.Generator, size: int, side: int, taken: list[tuple[int, int]]
) -> tuple[int, int]:
    """A top-left corner whose box (with a 2 px gap) overlaps no taken box."""
    for _ in range(200):
        top, left = rng.integers(0, size - side + 1, size=2)
        if all(abs(top - t) >= side + 2 or abs(left - u) >= side + 2 for t, u in taken):
            return int(top), int(left)
    raise ValueError(
        "The objects do not fit in the image: lower `distractors` or "
        f"`object_size`. {received('object_size', side)}"
    )


def evidence_images(
    n: int,
    *,
    size: int = 64,
    num_classes: int = 3,
    object_size: int = 14,
    distractors: int = 2,
    clutter: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images whose class is the shape of their one red object.

    Args:
        n: number of images.
        size: image height and width in pixels.
        num_classes: number of classes (shapes), 2 to 6.
        object_size: side of each object's square in pixels.
        distractors: objects per image in other colours, shapes at random.
        clutter: textured (`True`) or flat (`False`) backgrounds.
        seed: seed of the generator; the same seed gives the same images.

    Returns:
        `(x, y, masks)`: images float32 `(n, size, size, 3)` in [0, 1], labels
        int32 `(n,)` (balanced, shuffled) and the deciding object's pixels,
        bool `(n, size, size)`.

    Raises:
        ValueError: a bad count or size, or objects that do not fit.
        TypeError: a count or size that is not an integer.

    Example:
        >>> x, y, masks = evidence_images(4, size=32, object_size=8, seed=0)
        >>> x.shape, y.shape, masks.shape
        ((4, 32, 32, 3), (4,), (4, 32, 32))
    """
    n = check_positive_int(n, "n")
    size = check_positive_int(size, "size")
    num_classes = check_positive_int(num_classes, "num_classes")
    object_size = check_positive_int(object_size, "object_size")
    distractors = check_positive_int(distractors, "distractors", allow_zero=True)
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(
            f"`num_classes` must be between 2 and {len(SHAPES)}. "
            f"{received('num_classes', num_classes)}"
        )
    if not 4 <= object_size <= size:
        raise ValueError(
            "`object_size` must be at least 4 and at most `size`. "
            f"{received('object_size', object_size)}"
        )
    rng = np.random.default_rng(seed)
    shapes = [shape_mask(SHAPES[k], object_size) for k in range(num_classes)]
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    x = np.empty((n, size, size, 3), np.float32)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        image = _background(rng, size, clutter)
        taken: list[tuple[int, int]] = []
        for j in range(distractors + 1):
            top, left = _place(rng, size, object_size, taken)
            taken.append((top, left))
            if j == 0:
                shape, color = shapes[y[i]], TARGET_COLOR
                masks[i, top : top + object_size, left : left + object_size] = shape
            else:
                shape = shapes[rng.integers(num_classes)]
                color = DISTRACTOR_COLORS[rng.integers(len(DISTRACTOR_COLORS))]
            tone = np.asarray(color, np.float32) * rng.uniform(0.85, 1.0)
            window = image[top : top + object_size, left : left + object_size]
            window[shape] = tone
        x[i] = image
    return x, y, masks


def evidence_cnn(size: int = 64, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """A small functional CNN for `evidence_images`: convs, GAP, Dense logits.

    Layers: `conv1` (16) -> `pool1` -> `conv2` (32) -> `pool2` -> `conv3` (64)
    -> `conv4` (64) -> `avg_pool` (global average) -> `logits` (Dense, no
    activation). `expose()` finds `conv4` (the input of the global pooling),
    at a quarter of the input resolution; its receptive field (26 px) covers
    an object of 14 px.

    Args:
        size: input height and width.
        num_classes: number of output logits.
        seed: seed of the weight initialisers.

    Returns:
        An uncompiled `keras.Model` from `(B, size, size, 3)` to logits
        `(B, num_classes)`.
    """
    layers = keras.layers
    init = keras.initializers.GlorotUniform
    widths = ((16, True), (32, True), (64, False), (64, False))
    inputs = keras.Input((size, size, 3), name="images")
    h = inputs
    for i, (filters, pool) in enumerate(widths):
        h = layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            kernel_initializer=init(seed=seed + i),
            name=f"conv{i + 1}",
        )(h)
        if pool:
            h = layers.MaxPooling2D(name=f"pool{i + 1}")(h)
    h = layers.GlobalAveragePooling2D(name="avg_pool")(h)
    outputs = layers.Dense(
        num_classes, kernel_initializer=init(seed=seed + 10), name="logits"
    )(h)
    return keras.Model(inputs, outputs, name="evidence_cnn")


def train_evidence_cnn(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 8,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int = 0,
) -> keras.Model:
    """Train `evidence_cnn` on `evidence_images` (Adam, cross-entropy, seeded).

    Args:
        x: images `(n, size, size, 3)`.
        y: labels `(n,)`.
        epochs: passes over the data.
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        seed: seed of the weights and of the shuffling.
        verbose: Keras' `fit` verbosity.

    Returns:
        The trained model (logits output).

    Example:
        >>> x, y, _ = evidence_images(600, seed=0)
        >>> model = train_evidence_cnn(x, y, epochs=6)
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int32)
    if x.ndim != 4 or x.shape[1] != x.shape[2]:
        raise ValueError(f"`x` must be square images (n, s, s, 3). {received('x', x)}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"`y` must be labels (n,) matching `x`. {received('y', y)}")
    keras.utils.set_random_seed(seed)
    model = evidence_cnn(x.shape[1], int(y.max()) + 1, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose)
    return model
