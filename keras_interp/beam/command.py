"""`keras-interp explain-files`: the Beam pipeline from the command line.

    keras-interp explain-files "images/*.jpg" --model model.keras \\
        --method gradcam --output out/run [--runner DirectRunner] [--overlays] \\
        [any Beam pipeline option, e.g. --direct_num_workers=2]

Arguments the command does not know are passed to Beam as pipeline options,
so the same command runs on Dataflow, Flink or Spark (see docs/scale.md).
This module imports neither Beam nor TensorFlow until the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

#: The command's name.
COMMAND = "explain-files"


def _image_size(text: str) -> tuple[int, int]:
    """`"224"` or `"224x320"` (height x width)."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes, default=0) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected SIDE or HEIGHTxWIDTH of positive integers, got {text!r}"
        )
    return (sizes[0], sizes[-1])


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `explain-files` sub-command to `commands` (from `add_subparsers`)."""
    parser = commands.add_parser(
        COMMAND,
        help="explain every image file matching a pattern, on Apache Beam",
        description=(
            "Explain every image file matching PATTERN with Apache Beam's "
            "RunInference and write one row per image (Parquet or JSON lines), "
            "the maps (.npz), a dead-letter file and a manifest. Unknown "
            "options are Beam pipeline options. Needs keras-interp[beam]."
        ),
    )
    parser.add_argument("pattern", help='files to explain, e.g. "images/*.jpg"')
    parser.add_argument("--model", required=True, help=".keras/.h5 file or SavedModel")
    parser.add_argument(
        "--method",
        default="gradcam",
        help='method name or spec, e.g. "smooth(gradients, seed=0)"',
    )
    parser.add_argument("--output", required=True, help="output prefix")
    parser.add_argument("--runner", default="DirectRunner", help="Beam runner")
    parser.add_argument(
        "--overlays", action="store_true", help="also write PNG overlays"
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("parquet", "jsonl"),
        default="parquet",
        help="result rows format",
    )
    parser.add_argument("--num-shards", type=int, default=4, help="result files")
    parser.add_argument(
        "--top-k", type=int, default=1, help="predicted classes explained"
    )
    parser.add_argument(
        "--targets",
        type=int,
        nargs="+",
        help="explain these class indices instead of the predicted ones",
    )
    parser.add_argument(
        "--image-size",
        type=_image_size,
        help="SIDE or HEIGHTxWIDTH (default: the model's input size)",
    )
    parser.add_argument("--resize-mode", choices=("crop", "stretch"), default="crop")
    parser.add_argument(
        "--batch-size", type=int, help="largest batch RunInference forms"
    )
    return parser


def run(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    """Run the pipeline for parsed `args`; returns the exit status.

    The status is 0 when every matched file was explained or sent to the
    dead-letter file (failed images do not fail the run), 1 when the counts
    do not add up, and 2 when Beam is missing or an option is invalid.
    """
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        print(
            "keras-interp: explain-files needs Apache Beam: "
            "pip install 'keras-interp[beam]'",
            file=sys.stderr,
        )
        return 2
    from keras_interp._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from keras_interp.beam.pipeline import explain_files

    options = {}
    if args.batch_size is not None:
        options["max_batch_size"] = args.batch_size
    try:
        manifest = explain_files(
            args.pattern,
            args.model,
            args.method,
            args.output,
            output_format=args.output_format,
            num_shards=args.num_shards,
            overlays=args.overlays,
            pipeline_options=[f"--runner={args.runner}", *beam_args],
            targets=args.targets if args.targets else "predicted",
            top_k=args.top_k,
            image_size=args.image_size,
            resize_mode=args.resize_mode,
            **options,
        )
    except (FileNotFoundError, TypeError, ValueError) as error:
        print(f"keras-interp: {error}", file=sys.stderr)
        return 2
    counts = manifest["counts"]
    print(
        f"explained {counts['explained']} of {counts['read']} files, "
        f"{counts['failed']} failed (see {args.output}-failed.jsonl); "
        f"manifest: {args.output}-manifest.json"
    )
    return 0 if manifest["complete"] else 1
