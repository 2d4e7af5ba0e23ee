"""Test-session setup shared by every test module.

Runs at import time, before any TensorFlow op: the physical CPU is split into
two logical devices so that `tf.distribute.MirroredStrategy(["/cpu:0",
"/cpu:1"])` can exercise multi-replica code paths on a single machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
except RuntimeError:  # TensorFlow was initialised before this file ran.
    pass
