"""Benchmark every method against its floor, and against peers when installed.

    python benchmarks/bench_methods.py                 # both models, all methods
    python benchmarks/bench_methods.py --models mobilenetv2 --methods gradcam
    python benchmarks/bench_methods.py --scorecam-full  # 2048-channel Score-CAM

For each model (`keras.applications` MobileNetV2 and ResNet50, weights=None,
224x224, batch 8, CPU) it measures, in the same run:

- the floors: one compiled forward pass; forward + backward to the input
  (the floor of gradient methods); forward + backward to the explained layer
  (the floor of the CAM family);
- each method through `keras_interp.explain` (compiled, cached): the first
  call (tracing included) and the median of `--repeats` calls after warm-up;
- the same method with xplique and tf-keras-vis, where they offer it.

It prints one table per model: seconds, the ratio to the method's floor
(`n x floor` for methods that need n passes), and our speed-up over each peer.
Ratios are what to read: the machine's load cancels out within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from peers import peers as find_peers  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp.methods import get  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402

SETTINGS = {"samples": 20, "window": 56, "stride": 28, "masks": 200, "channels": 64}

#: name -> (spec, explain options, floor, passes): the floor is "grad" (to the
#: input), "cam" (to the layer), "full" (to the input and every biased layer)
#: or "forward"; passes multiply the floor.
METHODS = {
    "cam": ("cam", {}, "forward", 1),
    "gradcam": ("gradcam", {}, "cam", 1),
    "gradcampp": ("gradcampp", {}, "cam", 1),
    "layercam": ("layercam", {}, "cam", 1),
    "scorecam": ("scorecam", {"max_channels": SETTINGS["channels"]}, "forward", None),
    "gradients": ("gradients", {}, "grad", 1),
    "input_x_gradient": ("input_x_gradient", {}, "grad", 1),
    "smoothgrad": (
        f"smooth(gradients, repetitions={SETTINGS['samples']}, seed=0)",
        {},
        "grad",
        SETTINGS["samples"],
    ),
    "integrated_gradients": (
        "integrated_gradients",
        {"steps": SETTINGS["samples"]},
        "grad",
        SETTINGS["samples"],
    ),
    "guided_gradients": ("guided_gradients", {}, "grad", 1),
    "full_gradients": ("full_gradients", {}, "full", 1),
    "occlusion": (
        "occlusion",
        {"window": (SETTINGS["window"],) * 2, "stride": (SETTINGS["stride"],) * 2},
        "forward",
        None,
    ),
    "rise": ("rise", {"num_masks": SETTINGS["masks"], "seed": 0}, "forward", None),
}


def build(name: str) -> tuple[keras.Model, str]:
    """The model (logits head, random weights) and its last conv layer."""
    if name == "mobilenetv2":
        model = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
        return model, "out_relu"
    model = keras.applications.ResNet50(weights=None, classifier_activation=None)
    return model, "conv5_block3_out"


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of `repeats` calls after it) in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def floors(model, exposed, x, y, repeats):
    full = prepare(model, "full_gradients")
    forward = tf.function(lambda x: model(x, training=False))

    @tf.function
    def to_input(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            selected = tf.gather(model(x, training=False), y, batch_dims=1)
            total = tf.reduce_sum(selected)
        return selected, tape.gradient(total, x)

    @tf.function
    def to_layer(x, y):
        with tf.GradientTape() as tape:
            logits, activations = exposed(x, training=False)
            total = tf.reduce_sum(tf.gather(logits, y, batch_dims=1))
        # CAMs need the activations and the logits too: return them, so the
        # forward pass is not pruned away.
        return logits, activations, tape.gradient(total, activations)

    @tf.function
    def to_biases(x, y):
        # FullGrad's backward pass: to the input and to every biased layer.
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, *intermediates = full(x, training=False)
            total = tf.reduce_sum(tf.gather(logits, y, batch_dims=1))
        return [logits, *tape.gradient(total, [x, *intermediates])]

    xt, yt = tf.constant(x), tf.constant(y)
    runs = {
        "full": lambda: [t.numpy() for t in to_biases(xt, yt)],
        "forward": lambda: forward(xt).numpy(),
        "grad": lambda: [t.numpy() for t in to_input(xt, yt)],
        "cam": lambda: [t.numpy() for t in to_layer(xt, yt)],
    }
    for run in runs.values():  # trace once, outside the timings
        run()
    return {
        kind: (lambda run=run: timed(run, repeats)[1]) for kind, run in runs.items()
    }


def passes_of(name: str, model_name: str) -> int:
    """Forward passes per image for the perturbation methods (their floor)."""
    if name == "scorecam":
        return SETTINGS["channels"] + 1
    if name == "occlusion":
        n = (224 - SETTINGS["window"]) // SETTINGS["stride"] + 1
        return n * n
    return SETTINGS["masks"]


def run_model(model_name: str, methods: list[str], repeats: int, use_peers: bool):
    model, layer = build(model_name)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 224, 224, 3)).astype("float32")
    y = rng.integers(0, 1000, (8, 1)).astype("int32")
    exposed = ki.expose(model, arguments=layer)
    floor = floors(model, exposed, x, y, repeats)
    print(
        f"\n## {model_name} (batch 8, 224x224): floors (re-timed before each "
        f"method) forward {floor['forward']():.3f} s, backward to input "
        f"{floor['grad']():.3f} s, to {layer} {floor['cam']():.3f} s"
    )
    peer_makers = find_peers(SETTINGS) if use_peers else {}
    header = "| method | first call s | median s | floor ratio |"
    header += "".join(f" {p} s | speed-up vs {p} |" for p in peer_makers)
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in methods:
        spec, options, floor_kind, passes = METHODS[name]
        passes = passes or passes_of(name, model_name)
        subject = exposed if ki.methods.needs_exposed(spec) else model
        if spec == "full_gradients":
            subject = prepare(model, spec)
        method = get(spec)

        def ours(method=method, subject=subject, options=options):
            return ki.explain(method, subject, x, y, batch_size=8, verbose=0, **options)

        first, median = timed(ours, repeats)
        # The floor is timed again next to the method, so that a change of
        # machine load during the run does not skew the ratio.
        ratio = median / (passes * floor[floor_kind]())
        row = f"| {name} | {first:.2f} | {median:.3f} | "
        row += f"{ratio:.2f} x {passes}x{floor_kind} |"
        for adapters in peer_makers.values():
            if name not in adapters:
                row += " - | - |"
                continue
            try:
                run = adapters[name](model, layer)
                with contextlib.redirect_stdout(io.StringIO()):  # progress bars
                    _, peer = timed(lambda run=run: run(x, y), max(1, repeats - 1))
                row += f" {peer:.3f} | {peer / median:.2f}x |"
            except Exception as error:  # noqa: BLE001 - report and go on
                row += f" failed: {type(error).__name__} | - |"
        print(row, flush=True)


def scorecam_full() -> None:
    """Score-CAM over all 2048 ResNet50 channels, batch 8: time and peak RSS."""
    model, layer = build("resnet50")
    exposed = ki.expose(model, arguments=layer)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 224, 224, 3)).astype("float32")
    start = time.perf_counter()
    ki.explain("scorecam", exposed, x, np.zeros((8, 1), "int32"), batch_size=32)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"scorecam, all 2048 channels of ResNet50, batch 8: "
        f"{time.perf_counter() - start:.0f} s, peak memory {peak:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenetv2", "resnet50"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--scorecam-full", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scorecam_full:
        if args.child:
            scorecam_full()
        else:  # a fresh process, so its peak memory is Score-CAM's alone
            subprocess.run([sys.executable, __file__, "--scorecam-full", "--child"])
        return
    print(
        f"# keras_interp {ki.__version__}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, {os.cpu_count()} CPU cores"
    )
    for model_name in args.models:
        run_model(model_name, args.methods, args.repeats, not args.no_peers)


if __name__ == "__main__":
    main()
