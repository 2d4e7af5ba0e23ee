"""One-call shortcuts: `keras_interp.gradcam(model, x, y)` and friends.

Each shortcut is `explain()` with the method's natural post-processing (as
keras-explainable's `ke.gradcam` etc.), and it exposes the model itself when
the method needs an exposed model: pass your model as it is. Both facts come
from the method's record (`keras_interp.methods.record`); one shortcut exists
for every record with `shortcut=True`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from keras_interp import methods
from keras_interp.engine import explain
from keras_interp.engine.models import prepare


class _Natural(Mapping):
    """name -> natural post-processing, read live from the records."""

    def __getitem__(self, name: str) -> Callable:
        found = methods.RECORDS[name]
        if found.postprocessing is None:
            raise KeyError(name)
        return found.postprocessing

    def __iter__(self):
        return (n for n, r in methods.RECORDS.items() if r.postprocessing)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr({name: fn.__name__ for name, fn in self.items()})


#: name -> the post-processing a shortcut applies by default (from the records).
NATURAL_POSTPROCESSING: Mapping[str, Callable] = _Natural()


def _shortcut(name: str) -> Callable:
    found = methods.RECORDS[name]
    method, natural = found.function, found.postprocessing

    def shortcut(model: Any, x: Any, y: Any = None, **kwargs: Any):
        kwargs.setdefault("postprocessing", natural)
        return explain(method, model, x, y, **kwargs)

    shortcut.__name__ = shortcut.__qualname__ = name
    # The method's docstring without its example, which is the method's own.
    documentation = re.sub(
        r"\n\s*Example:\n.*?(?=\n\s*References:|\Z)",
        "",
        method.__doc__ or "",
        flags=re.S,
    )
    shortcut.__doc__ = (
        f"`explain({name}, model, x, y)` with `postprocessing="
        f"{getattr(natural, '__name__', natural)}`, maps resized to the inputs; "
        "the model is exposed automatically when the method needs it. Other "
        "keyword arguments go to `explain` and to the method.\n\n"
        f"Method documentation:\n\n{documentation}"
    )
    return shortcut


#: name -> shortcut, one per record with `shortcut=True`.
SHORTCUTS: Mapping[str, Callable] = MappingProxyType(
    {name: _shortcut(name) for name, r in methods.RECORDS.items() if r.shortcut}
)
globals().update(SHORTCUTS)
cam = SHORTCUTS["cam"]
gradcam = SHORTCUTS["gradcam"]
gradcampp = SHORTCUTS["gradcampp"]
scorecam = SHORTCUTS["scorecam"]
layercam = SHORTCUTS["layercam"]
gradients = SHORTCUTS["gradients"]
saliency = gradients
input_x_gradient = SHORTCUTS["input_x_gradient"]
integrated_gradients = SHORTCUTS["integrated_gradients"]
full_gradients = SHORTCUTS["full_gradients"]
guided_gradients = SHORTCUTS["guided_gradients"]
occlusion = SHORTCUTS["occlusion"]
rise = SHORTCUTS["rise"]
reciprocam = SHORTCUTS["reciprocam"]

__all__ = ["NATURAL_POSTPROCESSING", "SHORTCUTS", "prepare", "saliency", *SHORTCUTS]
