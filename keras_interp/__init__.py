"""keras_interp: TensorFlow/Keras-native explainability.

Importing the package is cheap: submodules (and TensorFlow) load on first use
of a name, e.g. `keras_interp.expose`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public shortcut -> module that defines it.
_SHORTCUTS = {
    "expose": "keras_interp.inspection",
    "find_layer": "keras_interp.inspection",
    "explain": "keras_interp.engine",
    "partial_explain": "keras_interp.engine",
    "load_image": "keras_interp.images",
    "Target": "keras_interp.inspection",
    **{
        name: "keras_interp.shortcuts"
        for name in (
            "cam",
            "gradcam",
            "gradcampp",
            "scorecam",
            "layercam",
            "gradients",
            "saliency",
            "input_x_gradient",
            "integrated_gradients",
            "full_gradients",
            "guided_gradients",
            "occlusion",
            "rise",
        )
    },
    **{name: "keras_interp.methods.meta" for name in ("smooth", "tta")},
}
_SUBMODULES = (
    "analysis",
    "concepts",
    "engine",
    "filters",
    "images",
    "inspection",
    "methods",
    "models",
    "shortcuts",
    "synthesis",
    "testing",
    "visualization",
)

__all__ = ["__version__", *_SHORTCUTS, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SHORTCUTS:
        value = getattr(importlib.import_module(_SHORTCUTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_interp.{name}")
    else:
        raise AttributeError(f"module 'keras_interp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
