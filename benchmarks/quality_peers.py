"""Localisation quality side by side with xplique on the known-evidence task.

    python benchmarks/quality_peers.py                 # medium level, 64 images
    python benchmarks/quality_peers.py --level hard --images 128 --cache /tmp/q

The evidence CNN of `quality.py` (seeded, cached with `--cache`) is explained
by keras_interp and by xplique 2.0.2 with the same settings (occlusion: same
window, stride and occluder value 0; RISE: same number of masks; the gradient
methods have no setting). Both libraries' maps are scored by the same
`keras_interp.metrics` functions (pointing game at tolerance 0 and 2 px,
relevance mass), so a difference in the table is a difference in the maps.
xplique is optional: install it beside keras_interp with `--no-deps` (see
`bench_metrics.py`); its missing optional imports get stand-ins.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from bench_metrics import load_xplique  # noqa: E402
from quality import LEVELS, trained_model  # noqa: E402

import keras_interp  # noqa: E402
from keras_interp import metrics  # noqa: E402
from keras_interp.testing.evidence import evidence_images  # noqa: E402

WINDOW, STRIDE, MASKS = 9, 2, 500

#: name -> (our spec, xplique factory(model, layer)).
METHODS = {
    "occlusion": (
        f"occlusion(window=({WINDOW}, {WINDOW}), stride=({STRIDE}, {STRIDE}))",
        lambda xa, m, _: xa.Occlusion(
            m,
            patch_size=WINDOW,
            patch_stride=STRIDE,
            batch_size=64,
            occlusion_value=0.0,
        ),
    ),
    "gradients": ("gradients", lambda xa, m, _: xa.Saliency(m, batch_size=16)),
    "gradcam": (
        "gradcam",
        lambda xa, m, layer: xa.GradCAM(m, conv_layer=layer, batch_size=16),
    ),
    "rise": (
        f"rise(num_masks={MASKS}, seed=0)",
        lambda xa, m, _: xa.Rise(m, nb_samples=MASKS, batch_size=64),
    ),
}


def scores(model, x, y, masks, maps) -> list[float]:
    """Pointing game (0 and 2 px) and relevance mass of `maps` (B, H, W)."""
    return [
        metrics.pointing_game(model, x, y, maps=maps, masks=masks).mean,
        metrics.pointing_game(model, x, y, maps=maps, masks=masks, tolerance=2).mean,
        metrics.relevance_mass(model, x, y, maps=maps, masks=masks).mean,
    ]


def ours(model, spec, x, y) -> np.ndarray:
    maps = keras_interp.explain(spec, model, x, y[:, None], batch_size=16)[1]
    return np.asarray(maps)[..., 0]


def theirs(xa, factory, model, x, y) -> np.ndarray:
    explainer = factory(xa, model, "conv4")
    targets = np.eye(model.output_shape[-1], dtype=np.float32)[y]
    maps = np.asarray(explainer.explain(x, targets))
    return maps if maps.ndim == 3 else maps.mean(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="medium", choices=list(LEVELS))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--cache", default="")
    args = parser.parse_args()
    xplique = load_xplique()
    model, _ = trained_model(args.level, 1200, 8, 0, args.cache)
    x, y, masks = evidence_images(args.images, seed=1, **LEVELS[args.level])
    y = np.asarray(y).reshape(-1).astype(np.int64)
    accuracy = float((model.predict(x, verbose=0).argmax(1) == y).mean())
    print(f"level {args.level}, {args.images} images, accuracy {accuracy:.3f}")
    print("| method | library | pointing 0 px | pointing 2 px | relevance mass | s |")
    print("|---|---|---|---|---|---|")
    for name in args.methods:
        spec, factory = METHODS[name]
        runs = {"keras_interp": (ours, (model, spec, x, y))}
        if xplique is not None:
            runs["xplique"] = (theirs, (xplique.attributions, factory, model, x, y))
        for library, (run, arguments) in runs.items():
            start = time.perf_counter()
            maps = run(*arguments)
            seconds = time.perf_counter() - start
            cells = " | ".join(f"{v:.3f}" for v in scores(model, x, y, masks, maps))
            print(f"| {name} | {library} | {cells} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
