"""Feature visualisation: lucid's four parts (param, transforms, objectives,
render) in TF2, and dnnbrain's synthesis image.

Example:
    >>> from keras_interp import synthesis as syn
    >>> param = syn.fourier_image((1, 64, 64, 3))
    >>> result = syn.render(model, syn.channel("conv", 3), param, steps=128)
    >>> result.images.shape
    (1, 64, 64, 3)
"""

from keras_interp.synthesis.dnnbrain import fourier_filter, synthesis_image
from keras_interp.synthesis.objectives import (
    Context,
    Objective,
    alpha_minimality,
    channel,
    class_logit,
    class_probability,
    direction,
    diversity,
    high_frequency,
    l1,
    l2,
    layer_key,
    layer_objective,
    neuron,
    total_variation,
)
from keras_interp.synthesis.param import Param, fourier_image, pixel_image
from keras_interp.synthesis.render import RenderResult, make_forward, render
from keras_interp.synthesis.transforms import (
    PRESETS,
    as_seed,
    blur,
    compose,
    fold_seed,
    gaussian_blur,
    jitter,
    pad,
    preset,
    random_affine,
    random_rotate,
    random_scale,
    standard_transforms,
    uniform,
    warp,
)

__all__ = [
    "PRESETS",
    "Context",
    "Objective",
    "Param",
    "RenderResult",
    "alpha_minimality",
    "as_seed",
    "blur",
    "channel",
    "class_logit",
    "class_probability",
    "compose",
    "direction",
    "diversity",
    "fold_seed",
    "fourier_filter",
    "fourier_image",
    "gaussian_blur",
    "high_frequency",
    "jitter",
    "l1",
    "l2",
    "layer_key",
    "layer_objective",
    "make_forward",
    "neuron",
    "pad",
    "pixel_image",
    "preset",
    "random_affine",
    "random_rotate",
    "random_scale",
    "render",
    "standard_transforms",
    "synthesis_image",
    "total_variation",
    "uniform",
    "warp",
]
