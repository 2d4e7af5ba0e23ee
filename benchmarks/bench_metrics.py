"""Time per image of every metric, against xplique 2.0.2 where it has the metric.

    python benchmarks/bench_metrics.py              # 32 images, 64x64
    python benchmarks/bench_metrics.py --images 16 --repeats 1

Model: the known-evidence CNN (`keras_interp.testing.evidence`), trained for
a few seconds (seeded); maps: Saliency (plain gradients), computed once and
given to both libraries. Each metric is timed after one warm-up call (which
traces our compiled steps), median of `--repeats`; ratios are what to read,
since the machine's load cancels out within one run.

Where our definition is xplique's (deletion and insertion with the same
steps, baseline 0 and the model's raw output), the values must agree to
float round-off, and the `same` column checks it. MuFidelity draws random
subsets (xplique unseeded), so only the values' closeness is shown. Average
stability (xplique's noise is one-sided, [0, r)), random logit (another
random class, another SSIM) and model randomisation (xplique redraws weights
from U[0, 1), we use each layer's initializer) deliberately differ.

xplique is optional and is not a dependency. Installed with `pip install
--no-deps xplique==2.0.2`, it imports beside TF 2.21 only if its unused
imports (deprecated, cv2, tensorflow_probability, einops) resolve: missing
ones are replaced by empty stand-ins here (none is called by the metrics).
Without xplique its columns show '-'.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_interp import metrics  # noqa: E402
from keras_interp.metrics._common import explain_maps  # noqa: E402
from keras_interp.testing.evidence import (  # noqa: E402
    evidence_images,
    train_evidence_cnn,
)


class _Stub(types.ModuleType):
    """A stand-in for an optional import xplique makes but the metrics never use."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _Stub(f"{self.__name__}.{name}")
        setattr(self, name, sub)
        return sub

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a bare decorator
        return lambda function: function


def load_xplique():
    """xplique's metrics module, or None (with the reason printed)."""
    stubbed = []
    for name in ("deprecated", "cv2", "tensorflow_probability", "einops"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Stub(name)
            stubbed.append(name)
    try:
        import xplique
        import xplique.attributions
        import xplique.metrics
    except Exception as error:  # noqa: BLE001 - any import failure means absent
        print(f"# xplique unavailable ({type(error).__name__}: {error}); '-' columns")
        return None
    print(f"# xplique {xplique.__version__} (stand-ins for: {', '.join(stubbed)})")
    return xplique


def timed(function, repeats):
    function()  # warm-up: tracing, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", help="a saved evidence CNN (else one is trained)")
    args = parser.parse_args()
    if args.model:
        model = keras.models.load_model(args.model)
    else:
        x, y, _ = evidence_images(600, seed=0)
        model = train_evidence_cnn(x, y, epochs=6, seed=0)
    x, y, masks = evidence_images(args.images, seed=1)
    n = len(x)
    onehot = np.eye(3, dtype=np.float32)[y]
    maps = explain_maps("gradients", model, x, y, 32)
    xp = load_xplique()
    xm = xa = None
    if xp is not None:
        xm, xa = xp.metrics, xp.attributions
        saliency = xa.Saliency(model, batch_size=32)

    common = {"maps": maps, "batch_size": 64, "score": "output"}
    ours = {
        "deletion": lambda: metrics.deletion(model, x, y, baseline=0.0, **common).mean,
        "insertion": lambda: (
            metrics.insertion(model, x, y, baseline=0.0, **common).mean
        ),
        "mu_fidelity": lambda: (
            metrics.mu_fidelity(
                model, x, y, nb_samples=200, correlation="spearman", **common
            ).mean
        ),
        "road": lambda: metrics.road(model, x, y, **common).mean,
        "faithfulness_correlation": lambda: (
            metrics.faithfulness_correlation(model, x, y, **common).mean
        ),
        "pointing_game": lambda: (
            metrics.pointing_game(model, x, y, maps=maps, masks=masks).mean
        ),
        "relevance_mass": lambda: (
            metrics.relevance_mass(model, x, y, maps=maps, masks=masks).mean
        ),
        "model_randomization": lambda: (
            metrics.model_randomization(
                model, x, y, method="gradients", maps=maps, batch_size=64
            ).mean
        ),
        "random_logit": lambda: (
            metrics.random_logit(
                model, x, y, method="gradients", maps=maps, batch_size=64
            ).mean
        ),
        "average_stability": lambda: (
            metrics.average_stability(
                model, x, y, method="gradients", maps=maps, batch_size=64
            ).mean
        ),
        "max_sensitivity": lambda: (
            metrics.max_sensitivity(
                model, x, y, method="gradients", maps=maps, batch_size=64
            ).mean
        ),
        "sparseness": lambda: metrics.sparseness(model, x, y, maps=maps).mean,
        "complexity": lambda: metrics.complexity(model, x, y, maps=maps).mean,
    }
    theirs, exact = {}, {"deletion", "insertion"}
    if xm is not None:
        theirs = {
            "deletion": lambda: xm.Deletion(model, x, onehot, batch_size=64).evaluate(
                maps
            ),
            "insertion": lambda: xm.Insertion(model, x, onehot, batch_size=64).evaluate(
                maps
            ),
            "mu_fidelity": lambda: xm.MuFidelity(
                model, x, onehot, batch_size=64, nb_samples=200
            ).evaluate(maps),
            "model_randomization": lambda: xm.ModelRandomizationMetric(
                model, x, onehot, batch_size=64
            ).evaluate(saliency),
            "random_logit": lambda: xm.RandomLogitMetric(
                model, x, onehot, batch_size=64
            ).evaluate(saliency),
            "average_stability": lambda: xm.AverageStability(
                model, x, onehot, batch_size=64
            ).evaluate(saliency),
        }
    print(f"\n{n} images 64x64, CPU, median of {args.repeats} after a warm-up\n")
    print(
        "| metric | ours ms/img | xplique ms/img | speed-up | ours | xplique | same |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, function in ours.items():
        seconds, value = timed(function, args.repeats)
        row = [f"{1000 * seconds / n:.1f}", "-", "-", f"{value:.6g}", "-", "-"]
        if name in theirs:
            try:
                their_seconds, their_value = timed(theirs[name], args.repeats)
                row[1] = f"{1000 * their_seconds / n:.1f}"
                row[2] = f"{their_seconds / seconds:.1f}x"
                their_value = float(their_value)
                row[4] = f"{their_value:.6g}"
                if name in exact:
                    close = abs(their_value - value) <= 1e-6 + 1e-4 * abs(their_value)
                    row[5] = "yes" if close else "NO"
                else:
                    row[5] = "n/a"
            except Exception as error:  # noqa: BLE001 - report, keep going
                row[1] = f"failed: {type(error).__name__}"
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
