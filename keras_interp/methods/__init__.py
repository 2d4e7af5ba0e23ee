"""Attribution methods and the registry that names them.

Every method follows one contract:
`fn(model, inputs, indices=None, *, spatial_axis=(-3, -2), **options)`
`-> (logits, maps)`.
Each method is declared once, where it is defined, with a record
(`method_record`): its name, family, whether it takes an exposed model, its
natural post-processing and its options. The registry reads the records and
lets callbacks, the CLI and serving name a method, wrappers included:
`get("tta(smooth(gradcam, repetitions=5), scales=[0.5])")`.
"""

from __future__ import annotations

from typing import Any

from keras_interp.methods.activation import upsampled_activation
from keras_interp.methods.cams import cam, gradcam, gradcampp, layercam
from keras_interp.methods.gradient import (
    full_gradients,
    gradients,
    input_x_gradient,
    integrated_gradients,
)
from keras_interp.methods.guided import guided_gradients, layer_gradients
from keras_interp.methods.meta import smooth, squaregrad, tta, vargrad, wrapper_of
from keras_interp.methods.perturbation import occlusion, rise
from keras_interp.methods.reciprocam import reciprocam
from keras_interp.methods.record import (
    METHODS,
    RECORDS,
    WRAPPER_RECORDS,
    WRAPPERS,
    MethodRecord,
    OptionSpec,
    WrapperRecord,
    method_record,
    wrapper_record,
)
from keras_interp.methods.registry import (
    check_options,
    get,
    needs_exposed,
    record,
    register,
    with_defaults,
)
from keras_interp.methods.scorecam import scorecam


def __getattr__(name: str) -> Any:
    if name == "EXPOSED":
        #: Names of the methods that take an exposed model `[scores,
        #: activations...]` (the layer is chosen with `expose(model, arguments=...)`).
        return frozenset(n for n, r in RECORDS.items() if r.exposed)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXPOSED",
    "METHODS",
    "RECORDS",
    "WRAPPERS",
    "WRAPPER_RECORDS",
    "MethodRecord",
    "OptionSpec",
    "WrapperRecord",
    "check_options",
    "get",
    "method_record",
    "needs_exposed",
    "record",
    "register",
    "with_defaults",
    "wrapper_of",
    "wrapper_record",
    "cam",
    "gradcam",
    "gradcampp",
    "layercam",
    "scorecam",
    "reciprocam",
    "gradients",
    "input_x_gradient",
    "integrated_gradients",
    "full_gradients",
    "guided_gradients",
    "layer_gradients",
    "occlusion",
    "rise",
    "upsampled_activation",
    "smooth",
    "tta",
    "vargrad",
    "squaregrad",
]
