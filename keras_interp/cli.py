"""The `keras-interp` command line.

keras-interp layers MODEL_PATH    the layer graph, output shapes, CAM targets
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


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
    parser = argparse.ArgumentParser(
        prog="keras-interp", description="Explain Keras models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    layers = commands.add_parser(
        "layers", help="print the layer graph, output shapes and CAM targets"
    )
    layers.add_argument("model_path", help="a .keras or .h5 model file")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        model = load_model(args.model_path)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras-interp: {error}", file=sys.stderr)
        return 2
    from keras_interp.inspection.summary import format_layer_table

    print(format_layer_table(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
