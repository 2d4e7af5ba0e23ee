"""Images per second: the Beam explain-files pipeline vs `explain()` over tf.data.

    python benchmarks/bench_beam.py                       # 64 images, 2 workers
    python benchmarks/bench_beam.py --images 512 --model mobilenetv2 --in-process
    python benchmarks/bench_beam.py --startup             # also time a 1-image run

Both sides read the same PNG files (square, so crop and stretch agree),
decode them, resize them to the model's input, explain them with Grad-CAM
(natural post-processing) and keep the maps:

- `tf.data + explain()`: `list_files -> read_file -> decode_png -> resize ->
  cache`, the scores of the exposed model (`predict`), then
  `keras_interp.gradcam` on `(image, predicted class)` pairs, in this process
  (the handler too runs a forward pass for the scores, then the step);
- `beam, in process` (`--in-process`): `explain_files(...)` on the
  DirectRunner in this process;
- `beam, N workers`: the same with `--direct_num_workers=N
  --direct_running_mode=multi_processing` (worker start-up included: each
  worker starts Python and imports TensorFlow).

Beam's numbers include everything a run does: matching, decoding, batching,
writing Parquet, maps and the manifest. `--startup` also times a run over one
image, so the per-image rate after start-up, `(N - 1) / (t_N - t_1)`, can be
read next to the end-to-end one. Requires `keras-interp[beam]`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp.beam import explain_files  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402


def build_model(name: str, size: int) -> keras.Model:
    """A small conv net, or MobileNetV2 (alpha 0.35, random weights)."""
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=0.35, weights=None, classes=10
        )
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def write_images(folder: pathlib.Path, count: int, side: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def run_tf_data(pattern: str, model: keras.Model, size: int, batch: int):
    """Decode with tf.data, then explain the predicted class as the handler does:
    one pass for the scores, one for the maps (decoded images cached)."""

    def load(path):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        image = tf.image.convert_image_dtype(image, tf.float32)
        return tf.image.resize(image, (size, size), method="bilinear")

    start = time.perf_counter()
    files = tf.data.Dataset.list_files(pattern, shuffle=False)
    images = files.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    prepared = prepare(model, "gradcam")
    scores = prepared.predict(images.batch(batch), verbose=0)[0]
    classes = tf.data.Dataset.from_tensor_slices(scores.argmax(axis=1)[:, None])
    pairs = tf.data.Dataset.zip((images, classes)).batch(batch).prefetch(2)
    _, maps = ki.gradcam(model, pairs, verbose=0)
    paths = [p.decode() for p in files.as_numpy_iterator()]
    return time.perf_counter() - start, dict(zip(paths, maps))


def run_beam(pattern: str, model_path: str, output: str, batch: int, args: list):
    start = time.perf_counter()
    manifest = explain_files(
        pattern,
        model_path,
        "gradcam",
        output,
        num_shards=2,
        max_batch_size=batch,
        pipeline_options=args,
    )
    seconds = time.perf_counter() - start
    assert manifest["complete"] and manifest["counts"]["failed"] == 0, manifest
    return seconds, manifest


def beam_maps(output: str) -> dict[str, np.ndarray]:
    found = {}
    for name in sorted(pathlib.Path(output).parent.glob("*-maps-*.npz")):
        with np.load(name) as archive:
            for path, maps in zip(archive["paths"], archive["maps"]):
                found[str(path)] = maps
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="model input side")
    parser.add_argument("--model", choices=("small", "mobilenetv2"), default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--startup", action="store_true", help="time a 1-image run")
    parser.add_argument(
        "--in-process", action="store_true", help="also time the in-process run"
    )
    args = parser.parse_args(argv)

    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench_beam_"))
    write_images(folder / "images", args.images, side=args.size + args.size // 4)
    model = build_model(args.model, args.size)
    model_path = str(folder / "model.keras")
    model.save(model_path)
    pattern = str(folder / "images" / "*.png")
    multi = [
        f"--direct_num_workers={args.workers}",
        "--direct_running_mode=multi_processing",
    ]

    rows = []
    seconds, maps = run_tf_data(pattern, model, args.size, args.batch)
    rows.append(("tf.data + explain()", seconds, args.images))
    if args.in_process:
        seconds, _ = run_beam(
            pattern, model_path, str(folder / "a" / "run"), args.batch, []
        )
        rows.append(("beam, in process", seconds, args.images))
    seconds, _ = run_beam(
        pattern, model_path, str(folder / "b" / "run"), args.batch, multi
    )
    rows.append((f"beam, {args.workers} workers", seconds, args.images))
    if args.startup:
        one = folder / "one"
        write_images(one, 1, side=args.size + args.size // 4)
        first, _ = run_beam(
            str(one / "*.png"), model_path, str(folder / "c" / "run"), args.batch, multi
        )
        rows.append((f"beam, {args.workers} workers, 1 image", first, 1))

    got = beam_maps(str(folder / "b" / "run"))
    assert sorted(got) == sorted(maps), "the two runs explained different files"
    difference = max(float(np.abs(got[f] - maps[f]).max()) for f in maps)

    print(
        f"\n{args.images} images {args.size}x{args.size}, model {args.model}, "
        f"Grad-CAM, batch {args.batch}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"{'pipeline':34s} {'seconds':>9s} {'images/s':>9s}")
    for name, seconds, count in rows:
        print(f"{name:34s} {seconds:9.2f} {count / seconds:9.1f}")
    if args.startup:
        steady = (args.images - 1) / max(rows[-2][1] - rows[-1][1], 1e-9)
        print(f"{'beam, after start-up (estimate)':34s} {'':9s} {steady:9.1f}")
    print(f"max |maps(beam) - maps(tf.data)| = {difference:.2e}")


if __name__ == "__main__":
    sys.exit(main())
