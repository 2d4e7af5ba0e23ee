"""The `keras-interp` command line.

keras-interp --version
keras-interp layers MODEL_PATH    the layer graph (full layer paths), CAM targets
keras-interp explain MODEL_PATH IMAGE... --method gradcam --out report.html
keras-interp explain-files "PATTERN" --model MODEL --output OUT   (Apache Beam)
keras-interp export MODEL_PATH OUT_DIR --method gradcam ...   (SavedModel, TF Serving)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from keras_interp._quiet import import_tensorflow_quietly


def load_model(path: str) -> Any:
    """Load a Keras model file (`.keras`, `.h5`) without compiling it.

    Keras 3 is tried first; a Keras 2 file it cannot read is loaded with
    tf_keras when that is installed.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: neither Keras 3 nor tf_keras can read it.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as keras_error:  # noqa: BLE001 - try tf_keras next
        try:
            import tf_keras

            return tf_keras.models.load_model(path, compile=False)
        except Exception:  # noqa: BLE001
            raise ValueError(
                f"Could not load {path!r} as a Keras model: {keras_error}"
            ) from keras_error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `keras-interp`; returns the exit status."""
    from keras_interp import __version__

    parser = argparse.ArgumentParser(
        prog="keras-interp", description="Explain Keras models."
    )
    parser.add_argument(
        "--version", action="version", version=f"keras-interp {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    layers = commands.add_parser(
        "layers", help="print the layer graph, output shapes and CAM targets"
    )
    layers.add_argument("model_path", help="a .keras or .h5 model file")
    from keras_interp.beam import command as explain_files_command

    explain_files_command.add_parser(commands)
    from keras_interp.serving.command import add_export_parser

    add_export_parser(commands)
    from keras_interp import _explain_command

    _explain_command.add_parser(commands)
    args, extra = parser.parse_known_args(argv)
    if args.command == explain_files_command.COMMAND:  # extra: Beam options
        return explain_files_command.run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import_tensorflow_quietly()
    try:
        model = load_model(args.model_path)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-interp: {error}", file=sys.stderr)
        return 2
    if args.command == "export":
        from keras_interp.serving.command import run_export

        try:
            return run_export(model, args)
        except (TypeError, ValueError) as error:
            print(f"keras-interp: {error}", file=sys.stderr)
            return 2
    if args.command == _explain_command.COMMAND:
        try:
            return _explain_command.run(model, args)
        except (OSError, TypeError, ValueError) as error:
            print(f"keras-interp: {error}", file=sys.stderr)
            return 2
    from keras_interp.inspection.summary import format_layer_table

    print(format_layer_table(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
