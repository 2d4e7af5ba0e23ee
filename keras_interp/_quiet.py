"""Import TensorFlow without its start-up noise (for the command line).

TensorFlow 2.21 prints C++ log lines (oneDNN, cudart stubs, CUDA
initialisation) while it is imported and at the first device query; the log
level variables do not silence all of them. `import_tensorflow_quietly` sets
them and points file descriptor 2 at `os.devnull` for the import and the first
device query only, so later errors still reach stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

#: Environment variables that lower TensorFlow's and absl's log levels.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "ABSL_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
}


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 (C++ and Python stderr) to `os.devnull`."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> Any:
    """Import TensorFlow (and Keras) with start-up logging silenced.

    Returns:
        The `tensorflow` module.
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    with stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")
        import keras  # noqa: F401  (its import logs too)
    return tf
