"""`keras-interp explain MODEL IMAGE... --method gradcam --out report.html`.

Loads the model and the images (resized to the model's input), predicts,
explains the top class of each image with every `--method`, and writes the
labelled HTML report of `keras_interp.visualization.report`.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

COMMAND = "explain"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `explain` subcommand to the CLI's subparsers."""
    parser = commands.add_parser(
        COMMAND, help="explain the top class of images and write an HTML report"
    )
    parser.add_argument("model_path", help="a .keras/.h5 file or SavedModel folder")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        help='a method name or spec, e.g. "smooth(gradients)"; repeatable '
        "(default: gradcam)",
    )
    parser.add_argument(
        "--preprocessing",
        default=None,
        help='the model\'s input range: "tf" ([-1, 1]), "torch", "caffe" or '
        '"LOW,HIGH" (default: [0, 1])',
    )
    parser.add_argument("--out", default="report.html", help="the report's path")
    return parser


def _preprocessing(text: str | None) -> Any:
    if text is None or text in ("tf", "torch", "caffe"):
        return text
    low, _, high = text.partition(",")
    try:
        return float(low), float(high)
    except ValueError:
        raise ValueError(
            '`--preprocessing` must be "tf", "torch", "caffe" or "LOW,HIGH". '
            f"Received: --preprocessing={text!r}"
        ) from None


def run(model: Any, args: argparse.Namespace) -> int:
    """Explain `args.images` with `model` and write the report; the exit code."""
    import numpy as np

    import keras_interp as ki
    from keras_interp.serving.preprocessing import scale_values

    methods = args.methods or ["gradcam"]
    shape = getattr(model, "input_shape", None)
    size = tuple(shape[1:3]) if shape and None not in shape[1:3] else (224, 224)
    images = np.stack([ki.load_image(path, size) for path in args.images])
    x = np.asarray(scale_values(images, _preprocessing(args.preprocessing)))
    scores = np.asarray(model(x, training=False))
    top = scores.argmax(axis=1)
    maps, signed, families = {}, {}, {}
    for spec in methods:
        record = ki.methods.record(spec)
        _, result = ki.explain(
            spec, model, x, top, postprocessing=record.postprocessing, verbose=0
        )
        maps[spec], signed[spec], families[spec] = (
            result[..., 0],
            record.signed,
            record.family,
        )
    names = [pathlib.Path(path).name for path in args.images]
    labels = [f"class {c} score {scores[i, c]:.2f}" for i, c in enumerate(top)]
    page = ki.visualization.report(
        f"keras-interp explain {pathlib.Path(args.model_path).name}",
        notes=[f"The top class of each image, explained with {', '.join(methods)}."],
    )
    page.add_grid(
        "Explanations",
        list(images),
        maps,
        row_labels=names,
        tile_labels={spec: labels for spec in methods},
        signed=signed,
        families=families,
    )
    path = page.save(args.out)
    print(f"Wrote {path.resolve()}")
    return 0
