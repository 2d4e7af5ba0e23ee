"""Quality of every method on a task with known evidence (a markdown table).

    python benchmarks/quality.py            # three difficulty levels
    python benchmarks/quality.py --quick    # one level, fewer images (~2 min)
    python benchmarks/quality.py --levels hard --methods gradcam occlusion

For each difficulty level, `keras_interp.testing.evidence` generates 64x64
images whose class is the shape of one red object among distractors of other
colours (on flat or textured backgrounds) and trains the small CNN on them
(seeded). Every registered method, plus the smooth and tta wrappers, is then
scored on held-out images with the metrics of `keras_interp.metrics`:
pointing game (tolerance 0), relevance mass, deletion and insertion AUC
(probability, 16 steps, baseline 0 / blur) and the cascading randomisation
check (mean Spearman similarity of |maps|; low = the method depends on the
weights). The same metrics run on a nested copy of the model (the conv layers
inside a sub-model, sharing the weights); the `nested` column is the largest
difference between the two (should be ~0).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_interp import metrics  # noqa: E402
from keras_interp.methods import METHODS  # noqa: E402
from keras_interp.testing.evidence import (  # noqa: E402
    evidence_images,
    train_evidence_cnn,
)

#: level -> evidence_images options.
LEVELS = {
    "easy": {"object_size": 16, "distractors": 0, "clutter": False},
    "medium": {"object_size": 14, "distractors": 2, "clutter": True},
    "hard": {"object_size": 10, "distractors": 4, "clutter": True},
}

#: Expensive methods run with lighter options.
OPTIONS = {
    "occlusion": "occlusion(window=(9, 9), stride=(2, 2))",
    "rise": "rise(num_masks=500, seed=0)",
}
WRAPPED = ["smooth(gradients, repetitions=10, seed=0)", "tta(gradcam)"]
METRICS = {
    "pointing_game": {},
    "relevance_mass": {},
    "deletion": {"steps": 16},
    "insertion": {"steps": 16},
}


def nested_copy(model: keras.Model) -> keras.Model:
    """The same network with its conv layers inside a sub-model (shared weights)."""
    backbone = keras.Model(
        model.input, model.get_layer("conv4").output, name="backbone"
    )
    inputs = keras.Input(model.input_shape[1:])
    h = backbone(inputs)
    h = model.get_layer("avg_pool")(h)
    return keras.Model(inputs, model.get_layer("logits")(h), name="nested")


def trained_model(level, n_train, epochs, seed, cache):
    """The level's CNN, trained (seeded) or loaded from `cache` if saved there."""
    path = cache and os.path.join(cache, f"{level}-{n_train}-{epochs}-{seed}.keras")
    if path and os.path.exists(path):
        return keras.models.load_model(path), 0.0
    x, y, _ = evidence_images(n_train, seed=seed, **LEVELS[level])
    start = time.perf_counter()
    model = train_evidence_cnn(x, y, epochs=epochs, seed=seed)
    if path:
        os.makedirs(cache, exist_ok=True)
        model.save(path)
    return model, time.perf_counter() - start


def run_level(level, methods, n_train, n_test, n_random, epochs, seed, cache):
    options = LEVELS[level]
    model, trained = trained_model(level, n_train, epochs, seed, cache)
    xt, yt, masks = evidence_images(n_test, seed=seed + 1, **options)
    accuracy = float((model.predict(xt, verbose=0).argmax(1) == yt).mean())
    print(
        f"\n### {level}: object {options['object_size']} px, "
        f"{options['distractors']} distractors, clutter={options['clutter']} "
        f"(accuracy {accuracy:.3f} on {n_test} held-out images, trained in "
        f"{trained:.0f} s)\n"
    )
    nested = nested_copy(model)
    columns = [*METRICS, "randomisation", "nested", "s"]
    print("| method | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for method in methods:
        start = time.perf_counter()
        flat = metrics.evaluate(
            [method], model, xt, yt, metrics=[METRICS], masks=masks, verbose=0
        )
        deep = metrics.evaluate(
            [method], nested, xt, yt, metrics=[METRICS], masks=masks, verbose=0
        )
        gap = float(np.abs(flat.to_numpy() - deep.to_numpy()).max())
        randomised = metrics.model_randomization(
            model, xt[:n_random], yt[:n_random], method=method
        ).mean
        row = [*flat.iloc[0].tolist(), randomised, gap, time.perf_counter() - start]
        cells = " | ".join(f"{v:.3f}" if i < len(row) - 1 else f"{v:.0f}"
                           for i, v in enumerate(row))  # fmt: skip
        print(f"| {method} | {cells} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS))
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache", default="", help="folder to save trained models in and reuse"
    )
    args = parser.parse_args()
    names = [OPTIONS.get(name, name) for name in METHODS] + WRAPPED
    methods = args.methods or names
    if args.quick:
        levels = args.levels or ["medium"]
        sizes = {"n_train": 1200, "n_test": 16, "n_random": 4, "epochs": 8}
    else:
        levels = args.levels or list(LEVELS)
        sizes = {"n_train": 1500, "n_test": 128, "n_random": 16, "epochs": 10}
    print(f"keras {keras.__version__}; metrics means over held-out images.")
    for level in levels:
        run_level(level, methods, seed=args.seed, cache=args.cache, **sizes)


if __name__ == "__main__":
    main()
