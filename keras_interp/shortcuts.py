"""One-call shortcuts: `keras_interp.gradcam(model, x, y)` and friends.

Each shortcut is `explain()` with the method's natural post-processing (as
keras-explainable's `ke.gradcam` etc.), and it exposes the model itself when
the method needs an exposed model: pass your model as it is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from keras_interp import filters, methods
from keras_interp.engine import explain
from keras_interp.inspection import expose
from keras_interp.inspection.expose import is_exposed

#: name -> the post-processing a shortcut applies by default.
NATURAL_POSTPROCESSING: dict[str, Callable] = {
    "cam": filters.positive_normalize,
    "gradcam": filters.positive_normalize,
    "gradcampp": filters.positive_normalize,
    "scorecam": filters.positive_normalize,
    "layercam": filters.positive_normalize,
    "gradients": filters.normalize,
    "input_x_gradient": filters.absolute_normalize,
    "integrated_gradients": filters.absolute_normalize,
    "full_gradients": filters.normalize,
    "guided_gradients": filters.normalize,
    "layer_gradients": filters.normalize,
    "occlusion": filters.positive_normalize,
    "rise": filters.normalize,
    "upsampled_activation": filters.normalize,
}

_EXPOSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare(model: Any, method: Any) -> Any:
    """The model `method` should be given: exposed if it needs to be.

    An already exposed model is returned as is; otherwise `expose(model)` (or,
    for `full_gradients`, the model exposing every layer with a bias) is made
    once per model and cached by weak reference.
    """
    if is_exposed(model) or not methods.needs_exposed(method):
        return model
    function = methods.get(method)
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    kind = "full" if function is methods.full_gradients else "default"
    try:
        cache = _EXPOSED.setdefault(model, {})
    except TypeError:  # not weakly referenceable: expose without caching
        cache = {}
    if kind not in cache:
        source = weakref.proxy(model)
        if kind == "full":
            cache[kind] = methods.gradient.full_gradients_model(source)
        else:
            cache[kind] = expose(source)
    return cache[kind]


def _shortcut(name: str) -> Callable:
    method = methods.METHODS[name]

    def shortcut(model: Any, x: Any, y: Any = None, **kwargs: Any):
        kwargs.setdefault("postprocessing", NATURAL_POSTPROCESSING[name])
        return explain(method, prepare(model, name), x, y, **kwargs)

    shortcut.__name__ = shortcut.__qualname__ = name
    shortcut.__doc__ = (
        f"`explain({name}, model, x, y)` with `postprocessing="
        f"{NATURAL_POSTPROCESSING[name].__name__}`, maps resized to the inputs; "
        "the model is exposed automatically when the method needs it. Other "
        "keyword arguments go to `explain` and to the method.\n\n"
        f"Method documentation:\n\n{method.__doc__}"
    )
    return shortcut


cam = _shortcut("cam")
gradcam = _shortcut("gradcam")
gradcampp = _shortcut("gradcampp")
scorecam = _shortcut("scorecam")
layercam = _shortcut("layercam")
gradients = _shortcut("gradients")
saliency = gradients
input_x_gradient = _shortcut("input_x_gradient")
integrated_gradients = _shortcut("integrated_gradients")
full_gradients = _shortcut("full_gradients")
guided_gradients = _shortcut("guided_gradients")
occlusion = _shortcut("occlusion")
rise = _shortcut("rise")
