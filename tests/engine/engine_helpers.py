"""Methods and models with known answers, shared by the engine tests."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_interp.inspection.units import gather_units

H, W, C, K = 6, 4, 2, 5  # Image height, width, channels; number of logits.


def input_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
    """Gradient of each selected logit w.r.t. the inputs, summed over channels."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        logits = gather_units(model(inputs, training=False), indices)
    jacobian = tape.batch_jacobian(logits, inputs)  # (B, L, H, W, C)
    return logits, tf.einsum("blhwc->bhwl", jacobian)


def pooled_gradient(model, inputs, indices=None, *, spatial_axis=(-3, -2), pool=2):
    """`input_gradient` averaged over `pool`x`pool` blocks: low-resolution maps."""
    logits, maps = input_gradient(model, inputs, indices)
    return logits, tf.nn.avg_pool2d(maps, pool, pool, "VALID")


def linear_model(seed=0):
    """`logits = flatten(x) @ kernel + bias`, so the input gradient is the kernel."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(H * W * C, K)).astype("float32")
    bias = rng.normal(size=K).astype("float32")
    model = keras.Sequential(
        [keras.Input((H, W, C)), keras.layers.Flatten(), keras.layers.Dense(K)]
    )
    model.layers[-1].set_weights([kernel, bias])
    return model, kernel, bias


def linear_answer(x, kernel, bias, indices=None):
    """The exact `(logits, maps)` of `input_gradient` on `linear_model`."""
    logits = x.reshape(len(x), -1) @ kernel + bias
    maps = np.broadcast_to(kernel.reshape(H, W, C, K).sum(axis=2), (len(x), H, W, K))
    if indices is not None:
        logits = np.take_along_axis(logits, indices, axis=1)
        maps = np.take_along_axis(maps, indices[:, None, None, :], axis=-1)
    return logits, maps


def conv_model(seed=0):
    """A small non-linear model: the gradient depends on the input."""
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((H, W, C)),
            keras.layers.Conv2D(
                3, 3, padding="same", activation="tanh", kernel_initializer=init
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(K, kernel_initializer=init),
        ]
    )


def images(n, seed=1, dtype="float32"):
    return np.random.default_rng(seed).normal(size=(n, H, W, C)).astype(dtype)


def units(n, width=1, seed=2):
    return np.random.default_rng(seed).integers(0, K, size=(n, width)).astype("int32")
