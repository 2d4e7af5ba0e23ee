"""What bench_perf.py's sections share: the models, BN calibration, timing,
map agreement, plain occlusion restricted to given windows, and the peers
(xplique and tf-keras-vis, both optional)."""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from scipy.stats import spearmanr

from keras_interp.methods._base import chunked, scores


def build(name: str, px: int, policy: str | None = None) -> keras.Model:
    """MobileNetV2 or ResNet50, weights=None, logits out, under `policy`."""
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        fn = {
            "mobilenetv2": keras.applications.MobileNetV2,
            "resnet50": keras.applications.ResNet50,
        }[name]
        return fn(weights=None, input_shape=(px, px, 3), classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def calibrate(model: keras.Model, x: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to the batch's."""
    bns = [
        la
        for la in model._flatten_layers()
        if type(la).__name__ == "BatchNormalization"
    ]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in bns:
        layer.momentum = 0.99


#: A first call longer than this is timed as it is: its one-off graph
#: optimisation (1-3 s) is small beside it, and a warm-up would double it.
LONG_CALL_S = 30.0


def clock(fn, repeats: int = 1) -> tuple[float, object]:
    """(mean seconds per call, the last result): traced first (for a
    `tf.function`), then one call timed; when that call is shorter than
    `LONG_CALL_S` it counts as the warm-up, and `repeats` calls are timed."""
    if hasattr(fn, "get_concrete_function"):
        fn.get_concrete_function()
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    if first >= LONG_CALL_S:
        return first, out
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - start) / repeats, out


def agreement(a, b) -> tuple[float, float]:
    """(Spearman rank correlation, top-10% overlap) per image, averaged."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rhos, tops = [], []
    for u, v in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        rhos.append(spearmanr(u, v).statistic)
        k = max(1, len(u) // 10)
        tops.append(len(set(np.argsort(-u)[:k]) & set(np.argsort(-v)[:k])) / k)
    return float(np.nanmean(rhos)), float(np.mean(tops))


def plain_jobs(model, x, window, stride, jobs, batch_size=64):
    """Plain occlusion's loop, restricted to `jobs` (sample, row, col)."""
    (win_w, win_h), (step_w, step_h) = window, stride
    rows, cols = tf.range(x.shape[1]), tf.range(x.shape[2])

    def update(state, job, valid):
        sample, i, j = tf.unstack(tf.gather(jobs, job), axis=1)
        top, left = (i * step_h)[:, None], (j * step_w)[:, None]
        in_r = (rows[None] >= top) & (rows[None] < top + win_h)
        in_c = (cols[None] >= left) & (cols[None] < left + win_w)
        hidden = in_r[:, :, None, None] & in_c[:, None, :, None]
        images = tf.where(hidden, 0.0, tf.gather(x, sample))
        return tf.tensor_scatter_nd_update(
            state, job[:, None], scores(model, images, None)[0]
        )

    state = tf.zeros([jobs.shape[0], model.output.shape[-1]])
    return chunked(jobs.shape[0], batch_size, update, state)


_XPLIQUE: list = []


def xplique_attributions():
    """`xplique.attributions`, or None when xplique is not installed (loaded
    once, with bench_metrics.py's stand-ins for its unused imports)."""
    if not _XPLIQUE:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_metrics import load_xplique

        _XPLIQUE.append(load_xplique())
    return None if _XPLIQUE[0] is None else _XPLIQUE[0].attributions


def tf_keras_vis(**settings) -> dict | None:
    """tf-keras-vis's adapters from peers.py (name -> make(model, layer) ->
    fn(x, y) -> maps) with these `settings` (`channels`: Score-CAM's `max_N`,
    None for all), or None when it is not installed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from peers import tf_keras_vis_adapters

    try:
        return tf_keras_vis_adapters({"samples": 8, "channels": None, **settings})
    except ImportError as error:
        print(f"# tf-keras-vis not installed ({error}); its columns are skipped")
        return None


def last_conv(model) -> str:
    """The name of the 4-D layer feeding the global pooling (the layer our
    `expose()` picks), for the peers' `penultimate_layer`."""
    for layer in reversed(model.layers):
        if len(layer.output.shape) == 4:
            return layer.name
    raise ValueError("no 4-D layer")


def one_hot(indices, classes: int) -> np.ndarray:
    """int `(B, 1)` -> float32 `(B, classes)`, xplique's targets."""
    return np.eye(classes, dtype=np.float32)[np.asarray(indices)[:, 0]]
