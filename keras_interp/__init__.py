"""keras_interp: TensorFlow/Keras-native explainability.

Importing the package is cheap: submodules (and TensorFlow) load on first use
of a name, e.g. `keras_interp.expose`. Type checkers see every public name
with its real type (the imports under `TYPE_CHECKING`), so a typo such as
`keras_interp.gradcamm` is an error in mypy, not an `Any`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: The library's version: the one place it is written (setup.cfg reads it).
__version__ = "0.2.0"

#: Public shortcut -> module that defines it.
_SHORTCUTS = {
    "expose": "keras_interp.inspection",
    "find_layer": "keras_interp.inspection",
    "Target": "keras_interp.inspection",
    "explain": "keras_interp.engine",
    "partial_explain": "keras_interp.engine",
    "load_image": "keras_interp.images",
    "smooth": "keras_interp.methods.meta",
    "tta": "keras_interp.methods.meta",
    "cam": "keras_interp.shortcuts",
    "gradcam": "keras_interp.shortcuts",
    "gradcampp": "keras_interp.shortcuts",
    "scorecam": "keras_interp.shortcuts",
    "reciprocam": "keras_interp.shortcuts",
    "layercam": "keras_interp.shortcuts",
    "gradients": "keras_interp.shortcuts",
    "saliency": "keras_interp.shortcuts",
    "input_x_gradient": "keras_interp.shortcuts",
    "integrated_gradients": "keras_interp.shortcuts",
    "full_gradients": "keras_interp.shortcuts",
    "guided_gradients": "keras_interp.shortcuts",
    "occlusion": "keras_interp.shortcuts",
    "rise": "keras_interp.shortcuts",
}
_SUBMODULES = (
    "analysis",
    "beam",
    "callbacks",
    "concepts",
    "engine",
    "filters",
    "images",
    "inspection",
    "methods",
    "metrics",
    "models",
    "serving",
    "shortcuts",
    "synthesis",
    "testing",
    "visualization",
)

__all__ = [
    "__version__",
    "Target",
    "cam",
    "expose",
    "explain",
    "find_layer",
    "full_gradients",
    "gradcam",
    "gradcampp",
    "gradients",
    "guided_gradients",
    "input_x_gradient",
    "integrated_gradients",
    "layercam",
    "load_image",
    "occlusion",
    "partial_explain",
    "reciprocam",
    "rise",
    "saliency",
    "scorecam",
    "smooth",
    "tta",
    "analysis",
    "beam",
    "callbacks",
    "concepts",
    "engine",
    "filters",
    "images",
    "inspection",
    "methods",
    "metrics",
    "models",
    "serving",
    "shortcuts",
    "synthesis",
    "testing",
    "visualization",
]

if TYPE_CHECKING:  # pragma: no cover - what type checkers read
    from keras_interp import (
        analysis,
        beam,
        callbacks,
        concepts,
        engine,
        filters,
        images,
        inspection,
        methods,
        metrics,
        models,
        serving,
        shortcuts,
        synthesis,
        testing,
        visualization,
    )
    from keras_interp.engine import explain, partial_explain
    from keras_interp.images import load_image
    from keras_interp.inspection import Target, expose, find_layer
    from keras_interp.methods.meta import smooth, tta
    from keras_interp.shortcuts import (
        cam,
        full_gradients,
        gradcam,
        gradcampp,
        gradients,
        guided_gradients,
        input_x_gradient,
        integrated_gradients,
        layercam,
        occlusion,
        reciprocam,
        rise,
        saliency,
        scorecam,
    )
else:

    def __getattr__(name: str) -> object:
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
