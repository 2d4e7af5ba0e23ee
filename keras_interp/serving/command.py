"""The `keras-interp export` subcommand (registered by `keras_interp.cli`)."""

from __future__ import annotations

import argparse
import ast
from typing import Any


def add_export_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `export MODEL_PATH OUT_DIR [options]` to the CLI's subparsers."""
    parser = commands.add_parser(
        "export",
        help="write a SavedModel with explain signatures for TF Serving",
        description=(
            "Export a Keras classifier as a SavedModel whose signatures "
            "(serving_default, explain, explain_classes, explain_images) return "
            "its predictions and explanations; prints the signatures."
        ),
    )
    parser.add_argument("model_path", help="a .keras or .h5 model file")
    parser.add_argument("out_dir", help="the SavedModel directory to write")
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="SPEC",
        help='a method name or spec, e.g. "smooth(gradients, seed=0)"; repeatable '
        "(default: gradcam)",
    )
    parser.add_argument(
        "--preprocessing",
        default=None,
        help="the value range of explain_images: tf, torch, caffe or LOW,HIGH "
        "(default: [0, 1])",
    )
    parser.add_argument("--top-k", type=int, default=1, help="classes explained")
    parser.add_argument(
        "--image-size", default=None, help="SIZE or HEIGHT,WIDTH (default: the model's)"
    )
    parser.add_argument(
        "--resize-mode", default="crop", choices=["crop", "stretch", "cavlib"]
    )
    parser.add_argument(
        "--postprocessing",
        default="none",
        choices=["none", "natural"],
        help="natural: each method's usual normalisation; none: raw maps",
    )
    parser.add_argument(
        "--overlay", action="store_true", help="add overlay_png_bytes to explain_images"
    )
    parser.add_argument(
        "--no-probabilities", action="store_true", help="leave out probabilities"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option (a Python literal), e.g. batch_size=16; repeatable",
    )
    return parser


def _pair(text: str | None, arg: str) -> Any:
    if text is None or "," not in text:
        return text if text is None or not text.strip().isdigit() else int(text)
    try:
        return tuple(ast.literal_eval(part.strip()) for part in text.split(","))
    except (ValueError, SyntaxError):
        raise ValueError(
            f"--{arg} must be numbers separated by a comma: {text!r}"
        ) from None


def run_export(model: Any, args: argparse.Namespace) -> int:
    """Run `export` for parsed arguments; print the signatures."""
    from keras_interp.serving.exporting import export, format_signatures

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key.strip()] = value.strip()
    signatures = export(
        model,
        args.out_dir,
        methods=tuple(args.methods or ["gradcam"]),
        image_size=_pair(args.image_size, "image-size"),
        preprocessing=_pair(args.preprocessing, "preprocessing"),
        top_k=args.top_k,
        overlay=args.overlay,
        include_probabilities=not args.no_probabilities,
        resize_mode=args.resize_mode,
        postprocessing=None if args.postprocessing == "none" else "natural",
        **options,
    )
    print(f"SavedModel written to {args.out_dir}")
    print(format_signatures(signatures))
    return 0
