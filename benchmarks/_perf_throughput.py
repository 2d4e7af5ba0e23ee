"""bench_perf.py's sections on what limits throughput besides the method:
bfloat16 compute, `tf.data` input, and first-call (tracing) time; xplique side
by side where it has the method."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from _perf_common import (
    agreement,
    build,
    clock,
    last_conv,
    one_hot,
    tf_keras_vis,
    xplique_attributions,
)

import keras_interp as ki
from keras_interp.methods.reciprocam import reciprocam


def bench_bf16(name, model, x, args) -> None:
    """fp32 vs a mixed_bfloat16 copy with the same weights, per method, on
    `args.bf16_images` copies of the images (a call of 2 images is too short
    to time on a shared machine)."""
    low = build(name, x.shape[1], "mixed_bfloat16")
    low.set_weights(model.get_weights())
    xs = tf.constant(np.resize(x, (args.bf16_images, *x.shape[1:])))
    y = tf.zeros((len(xs), 1), tf.int32)
    for method in ("gradients", "gradcam", "layercam"):
        fns = []
        for m in (model, low):
            prepared = ki.shortcuts.prepare(m, method)
            fn = ki.methods.get(method)
            fns.append(tf.function(lambda p=prepared, fn=fn: fn(p, xs, y)[1]))
        t32, a = clock(fns[0], args.repeats)
        t16, b = clock(fns[1], args.repeats)
        rho, top = agreement(np.asarray(a, np.float32), np.asarray(b, np.float32))
        print(
            f"  bf16 {method:10s}: fp32 {t32:.2f}s, bf16 {t16:.2f}s ({t32 / t16:.2f}x)"
            f", Spearman {rho:.3f}, top-10% {top:.2f}, dtype {b.dtype.name}"
        )
    print("  bf16 peers: xplique and tf-keras-vis have no bfloat16 mode (not timed)")


def bench_dataset(model, x, args) -> None:
    """explain() over a batched, prefetched tf.data.Dataset of (images,
    indices) vs the bare compiled forward + backward loop over the same one."""
    n, batch = args.dataset, 32
    images = np.resize(x, (n, *x.shape[1:])).astype("float32")
    labels = (np.arange(n) % model.output.shape[-1]).astype("int32")[:, None]
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
    ds = ds.prefetch(2)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            tape.watch(images)
            out = tf.gather(model(images, training=False), labels, batch_dims=1)
        return tape.gradient(out, images)

    def floor():
        for images_, labels_ in ds:
            step(images_, labels_)

    def ours():
        ki.explain(ki.methods.get("gradients"), model, ds, verbose=0)

    runners = {"floor": floor, "explain": ours}
    xa = xplique_attributions()
    if xa is not None:
        saliency = xa.Saliency(model, batch_size=batch)
        targets = one_hot(labels, model.output.shape[-1])
        runners["xplique Saliency"] = lambda: saliency.explain(images, targets)
    tkv = tf_keras_vis()
    if tkv is not None:  # no batching of its own: batches of 32 from Python
        peer_saliency = tkv["gradients"](model, None)

        def peer():
            for start in range(0, n, batch):
                part = slice(start, start + batch)
                peer_saliency(images[part], labels[part])

        runners["tf-keras-vis Saliency"] = peer
    seconds = interleaved(runners, max(3, args.repeats))
    floor_s = seconds["floor"]
    print(
        f"  dataset {n} images, batch {batch}, median of {max(3, args.repeats)} "
        "interleaved passes: "
        + ", ".join(
            f"{name} {n / s:.1f} img/s ({floor_s / s:.2f}x of the floor)"
            for name, s in seconds.items()
        )
    )


def interleaved(runners: dict, repeats: int) -> dict:
    """Median seconds per runner over `repeats` rounds, each round running
    every runner once in turn (after one warm-up round), so that a slow or a
    fast spell of a shared machine falls on all of them alike."""
    for run in runners.values():
        run()
    times: dict = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def _first_second(call) -> str:
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    start = time.perf_counter()
    call()
    return f"{first:.1f}s/{time.perf_counter() - start:.1f}s"


def bench_first(model, x, args) -> None:
    """First (tracing) and second call per method, ours and xplique's."""
    xs = x[:2]
    y = np.zeros((len(xs), 1), np.int32)
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
        target = ki.expose(model) if spec == "reciprocam" else model
        call = lambda m=method, t=target, o=options: ki.explain(  # noqa: E731
            m, t, xs, y, verbose=0, **o
        )
        rows.append(f"{spec} {_first_second(call)}")
    print("  first call / second call: " + ", ".join(rows))
    tkv = tf_keras_vis(channels=16)
    if tkv is not None:
        rows, layer = [], last_conv(model)
        for name in ("gradients", "gradcam", "scorecam"):
            run = tkv[name](model, layer)
            rows.append(f"{name} {_first_second(lambda r=run: r(xs, y))}")
        print("  tf-keras-vis first call / second call: " + ", ".join(rows))
    xa = xplique_attributions()
    if xa is None:
        return
    targets = one_hot(y, model.output.shape[-1])
    peers = {
        "Saliency": lambda: xa.Saliency(model),
        "GradCAM": lambda: xa.GradCAM(model),
        "Occlusion": lambda: xa.Occlusion(
            model, patch_size=(56, 56), patch_stride=(28, 28), batch_size=64
        ),
        "Rise": lambda: xa.Rise(model, nb_samples=64, batch_size=64),
    }
    rows = []
    for name, make in peers.items():
        explainer = make()
        rows.append(f"{name} {_first_second(lambda e=explainer: e(xs, targets))}")
    print("  xplique first call / second call: " + ", ".join(rows))
