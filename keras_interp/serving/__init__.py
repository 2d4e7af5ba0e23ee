"""Serving: SavedModel export with explain signatures; preprocessing as graph ops.

`export(model, path, methods=[...])` writes a SavedModel that TF Serving (or
`tf.saved_model.load` without keras_interp) runs: the model's predictions,
and explanations of float images or of encoded image bytes decoded, resized
and scaled in the graph (`keras_interp.serving.preprocessing`).
"""

from __future__ import annotations

from keras_interp.serving import preprocessing
from keras_interp.serving.export import (
    SIGNATURES,
    export,
    format_signatures,
    output_name,
)
from keras_interp.serving.preprocessing import (
    cavlib_crop,
    decode_image,
    glimpse_resize,
    prepare_images,
    resize_image,
    scale_values,
)

__all__ = [
    "SIGNATURES",
    "cavlib_crop",
    "decode_image",
    "export",
    "format_signatures",
    "glimpse_resize",
    "output_name",
    "prepare_images",
    "preprocessing",
    "resize_image",
    "scale_values",
]
