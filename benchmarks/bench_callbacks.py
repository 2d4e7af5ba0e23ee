"""The cost of `ExplainCallback` per epoch, as a fraction of the epoch time.

    python benchmarks/bench_callbacks.py                  # defaults below
    python benchmarks/bench_callbacks.py --epochs 6 --images 8 --budget 0.5

A small CNN (`keras_interp.testing.evidence.evidence_cnn`, 32x32 inputs) is
trained on `--train` images of the known-evidence task three times with the
same seed: without callback, with `ExplainCallback` watching `--images` images
with three methods (gradcam, gradients, smooth(gradients)), and with the same
callback under `max_seconds=--budget`. It prints, per run, the median epoch
time, the callback's median and worst seconds per call (the first call, which
traces and measures every part, is reported apart), the overhead as a
fraction of the uncallbacked epoch, and whether every call from the second on
stayed within the budget (with what was skipped and the grid tile sizes
drawn). Ratios are what to read: the machine's load cancels out within one
run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_interp.callbacks import ExplainCallback  # noqa: E402
from keras_interp.testing.evidence import evidence_cnn, evidence_images  # noqa: E402

METHODS = ["gradcam", "gradients", "smooth(gradients, repetitions=8, seed=0)"]


class EpochTimer(keras.callbacks.Callback):
    """Seconds of each epoch, from begin to end (callbacks after it excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def run(args, callback):
    settings = dict(size=32, object_size=8, distractors=1, clutter=False)
    x, y, _ = evidence_images(args.train, seed=0, **settings)
    keras.utils.set_random_seed(0)
    model = evidence_cnn(32, 3)
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    timer = EpochTimer()
    callbacks = [timer] + ([callback] if callback is not None else [])
    model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0, callbacks=callbacks)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--budget", type=float, default=0.25)
    args = parser.parse_args()
    watched, labels, _ = evidence_images(
        args.images, size=32, object_size=8, distractors=1, clutter=False, seed=1
    )
    base = statistics.median(run(args, None)[1:])
    print(f"epoch without callback (median): {base:.3f} s")
    print(
        f"{'run':<22}{'first s':>9}{'median s':>9}{'worst s':>9}"
        f"{'overhead':>10}  within budget"
    )
    for label, budget in (
        ("3 methods", None),
        (f"max_seconds={args.budget}", args.budget),
    ):
        with tempfile.TemporaryDirectory() as log_dir:
            callback = ExplainCallback(
                watched, "true", labels=labels, methods=METHODS, log_dir=log_dir,
                max_seconds=budget,
            )  # fmt: skip
            run(args, callback)
        calls = [s for _, s in callback.seconds]
        steady = calls[1:] or calls[-1:]
        median = statistics.median(steady)
        within = "-" if budget is None else str(max(steady) <= budget)
        skipped = sum(len(names) for _, names in callback.skipped)
        tiles = sorted({int(v) for _, v in callback.scalars.get("tile_size", [])})
        note = (
            f" ({skipped} method runs skipped, {len(callback.skipped_epochs)} "
            f"epochs skipped, tiles {tiles})"
        )
        print(
            f"{label:<22}{calls[0]:>9.3f}{median:>9.3f}"
            f"{max(steady):>9.3f}{median / base:>9.1%}  {within}"
            + (note if budget is not None else "")
        )


if __name__ == "__main__":
    main()
