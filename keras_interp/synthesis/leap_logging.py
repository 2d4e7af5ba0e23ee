"""Where `generate()` writes: PNG files, TensorBoard and Weights & Biases.

TensorBoard event files are written with TensorFlow's core `tf.summary.write`
and the metadata of TensorBoard's scalar and image plugins, so they need no
`tensorboard` package to be written (only to be viewed).
"""

from __future__ import annotations

import io
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    metadata.data_class = data_class
    return metadata


_SCALAR = _metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
_IMAGE = _metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, rounded."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _pil(image: np.ndarray) -> Image.Image:
    array = to_uint8(image)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(array.shape[-1])
    if mode is None:  # other channel counts: the first three
        array, mode = array[..., :3], "RGB"
    return Image.fromarray(array[..., 0] if mode == "L" else array, mode)


def save_png(path: pathlib.Path, image: np.ndarray) -> None:
    """Save a float image in [0, 1] `(H, W, C)` (C = 1, 2, 3 or 4) as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(image).save(path)


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


class LeapLogger:
    """TensorBoard (always, in `<project>/logs`) and Weights & Biases (with
    `wandb_api_key`, if wandb is installed; else a warning)."""

    def __init__(self, base: pathlib.Path, project_name: str, config: dict) -> None:
        self.base = base
        project = base / project_name
        project.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(project / "logs"))
        self.wandb = self.run = None
        if not config["wandb_api_key"]:
            return
        try:
            import wandb
        except ImportError:
            warnings.warn(
                "`wandb_api_key` was given but wandb is not installed "
                "(`pip install wandb`); logging to TensorBoard only.",
                stacklevel=3,
            )
            return
        self.wandb = wandb
        wandb.login(key=config["wandb_api_key"])
        public = {
            k: v
            for k, v in config.items()
            if not k.endswith("api_key") and not k.startswith("_")
        }
        self.run = wandb.init(
            project=project_name, entity=config["wandb_entity"], config=public
        )

    def callback(self, kind: str, labels: list[str], classes: Any) -> Callable:
        """`log(step, images, probabilities)`: each image's probability of its
        class (tagged with its label, a results row id) and the images (tag
        `kind`) at a step."""

        def log(step: int, images: np.ndarray, probabilities: np.ndarray) -> None:
            values = {
                label: float(p[k])
                for label, p, k in zip(labels, probabilities, classes)
            }
            height, width = images.shape[1:3]
            blobs = [str(width), str(height)]
            blobs += [_png_bytes(image) for image in images[:16]]
            with self.writer.as_default():
                for key, value in values.items():
                    tf.summary.write(key, value, step=step, metadata=_SCALAR)
                tf.summary.write(kind, tf.constant(blobs), step=step, metadata=_IMAGE)
            if self.run is not None:
                self.run.log({**values, f"{kind}/step": step})

        return log

    def close(self, rows: list[dict]) -> None:
        """Flush TensorBoard; send the result images and table to W&B."""
        self.writer.flush()
        self.writer.close()
        if self.run is None:
            return
        images = {
            row["id"]: self.wandb.Image(str(self.base / row["image_path"]))
            for row in rows
            if row["kind"] != "entanglement" and row["image_path"]
        }
        self.run.log(images)
        self.run.finish()
