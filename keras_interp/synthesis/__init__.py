"""Feature visualisation: lucid's four parts in TF2, dnnbrain's synthesis
image and Leap's prototypes.

lucid's four swappable parts:

- **param** (`param`): how the image is made, `pixel_image` or
  `fourier_image`, optionally with an alpha channel.
- **transforms** (`transforms`, with the resampling in `geometry`): seeded,
  composable robustness transforms (`pad`, `jitter`, `random_affine`,
  `blur`, `standard_transforms`, Leap's `preset`s).
- **objective** (`objectives`, with the image penalties in `regularizers`):
  immutable, combined with `+`, `-`, `*` (`channel`, `neuron`, `direction`,
  `diversity`, `class_logit`; `l1`, `total_variation`, `alpha_minimality`).
- **render** (`rendering`): one compiled optimisation step, `render`.

dnnbrain (`dnnbrain`): `synthesis_image`, the preferred stimulus of a channel
or unit optimised in pixel space (L1/L2/TV penalties, Fourier smoothing of the
gradient, Gaussian blur), with `fourier_filter`.

Leap (`leap`, `leap_config`, `prototypes`, `class_entanglement`,
`isolation`): `generate` with leap-ie's documented config
(`load_leap_config`), built on `class_prototypes`, `entanglement` and
`isolate_features`.

Example:
    >>> from keras_interp import synthesis as syn
    >>> from keras_interp.testing.models import gap_dense
    >>> model = gap_dense(size=32)  # a Conv2D layer "conv" with 4 channels
    >>> param = syn.fourier_image((1, 32, 32, 3))
    >>> result = syn.render(model, syn.channel("conv", 3), param, steps=16,
    ...                     verbose=0)
    >>> result.images.shape
    (1, 32, 32, 3)
"""

from keras_interp.synthesis.class_entanglement import Entanglement, entanglement
from keras_interp.synthesis.context import Context, layer_key
from keras_interp.synthesis.dnnbrain import fourier_filter, synthesis_image
from keras_interp.synthesis.geometry import warp
from keras_interp.synthesis.isolation import Isolation, isolate_features, mask_iou
from keras_interp.synthesis.leap import generate
from keras_interp.synthesis.leap_config import load_config as load_leap_config
from keras_interp.synthesis.objectives import (
    Objective,
    channel,
    class_logit,
    class_probability,
    direction,
    diversity,
    layer_objective,
    neuron,
)
from keras_interp.synthesis.param import Param, fourier_image, pixel_image
from keras_interp.synthesis.prototypes import Prototypes, class_prototypes, equalise
from keras_interp.synthesis.regularizers import (
    alpha_minimality,
    high_frequency,
    l1,
    l2,
    total_variation,
    variation,
)
from keras_interp.synthesis.rendering import RenderResult, make_forward, render
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
)

__all__ = [
    "PRESETS",
    "Context",
    "Entanglement",
    "Isolation",
    "Objective",
    "Param",
    "Prototypes",
    "RenderResult",
    "alpha_minimality",
    "as_seed",
    "blur",
    "channel",
    "class_logit",
    "class_probability",
    "class_prototypes",
    "compose",
    "direction",
    "diversity",
    "entanglement",
    "equalise",
    "fold_seed",
    "fourier_filter",
    "fourier_image",
    "gaussian_blur",
    "generate",
    "high_frequency",
    "isolate_features",
    "jitter",
    "l1",
    "l2",
    "layer_key",
    "layer_objective",
    "load_leap_config",
    "make_forward",
    "mask_iou",
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
    "variation",
    "warp",
]
