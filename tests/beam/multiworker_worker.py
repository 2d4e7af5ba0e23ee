"""One worker of the MultiWorkerMirroredStrategy test (run as a subprocess).

Usage: python multiworker_worker.py OUT.npz  (TF_CONFIG set by the caller;
without TF_CONFIG it runs on one process with no strategy). Every worker
explains the same images and saves what `explain` returned to it.
"""

from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_interp.engine import explain  # noqa: E402
from keras_interp.testing.models import gap_dense  # noqa: E402

#: Seconds after which a worker exits whatever it is doing, so a worker left
#: behind (its test killed, its peer gone) never outlives the test.
WATCHDOG = 300

#: Images explained: 7 in batches of 4 leave a final batch of 3, which does
#: not divide over the 2 workers.
IMAGES, BATCH_SIZE = 7, 4


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((IMAGES, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 3, size=(IMAGES, 2)).astype(np.int32)
    return x, y


def main(path: str) -> None:
    """Explain the images (with the strategy TF_CONFIG asks for) into `path`."""
    strategy = None
    if "TF_CONFIG" in os.environ:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = data()
    model = gap_dense(size=8, channels=4, classes=3, seed=0)
    from keras_interp.shortcuts import prepare

    logits, maps = explain(
        "gradcam",
        prepare(model, "gradcam"),
        x,
        y,
        batch_size=BATCH_SIZE,
        strategy=strategy,
        verbose=0,
    )
    np.savez(path, logits=logits, maps=maps)


if __name__ == "__main__":
    watchdog = threading.Timer(WATCHDOG, os._exit, args=(3,))
    watchdog.daemon = True
    watchdog.start()
    main(sys.argv[1])
