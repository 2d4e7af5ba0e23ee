"""Serving: SavedModel export with explain signatures; preprocessing as graph ops.

- `export(model, path, methods=[...])`: a SavedModel that TF Serving (or
  `tf.saved_model.load` without keras_interp) runs: the model's predictions,
  and explanations of float images or of encoded image bytes decoded,
  resized and scaled in the graph.
- `output_name`, `format_signatures`, `SIGNATURES`: the exported names.
- `keras_interp.serving.preprocessing`: decoding, the library's resizing rules
  and the Keras value ranges as TensorFlow ops (`decode_image`,
  `resize_image`, `cavlib_crop`, `glimpse_resize`, `scale_values`,
  `prepare_images`).

Names load on first use, so importing the package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "SIGNATURES": "keras_interp.serving.exporting",
    "export": "keras_interp.serving.exporting",
    "format_signatures": "keras_interp.serving.exporting",
    "output_name": "keras_interp.serving.exporting",
    "cavlib_crop": "keras_interp.serving.preprocessing",
    "decode_image": "keras_interp.serving.preprocessing",
    "glimpse_resize": "keras_interp.serving.preprocessing",
    "prepare_images": "keras_interp.serving.preprocessing",
    "resize_image": "keras_interp.serving.preprocessing",
    "scale_values": "keras_interp.serving.preprocessing",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_NAMES[name])
    value = getattr(module, name)
    globals()[name] = value
    return value
