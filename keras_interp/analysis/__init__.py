"""What region and which parts of an image a unit depends on (dnnbrain's tools).

- Receptive fields: `theoretical_receptive_field` (any Keras graph),
  `receptive_fields` (many layers), `gradient_receptive_field` and
  `empirical_receptive_field` (dnnbrain's upsampled-activation estimate).
- `masked_image`: the smallest eroded blob mask that keeps a unit active.
- `minimal_parcel_image`: the fewest segments (felzenszwalb, slic,
  quickshift) that drive a channel; `minimal_component_image`: the same with
  PCA/ICA components of the image's patches.

Channels (and unit rows and columns) are numbered from 0, like every Keras API;
dnnbrain numbers them from 1.
"""

from keras_interp.analysis._activation import CRITERIA, channel_activation
from keras_interp.analysis.components import (
    COMPONENT_METHODS,
    MinimalComponentResult,
    component_decompose,
    minimal_component_image,
)
from keras_interp.analysis.empirical import (
    GradientReceptiveField,
    empirical_receptive_field,
    gradient_receptive_field,
)
from keras_interp.analysis.masked import MaskedImageResult, masked_image
from keras_interp.analysis.minimal import (
    DECOMPOSITIONS,
    SEARCH_CRITERIA,
    MinimalImageResult,
    MinimalParcelResult,
    felzenszwalb_decompose,
    minimal_parcel_image,
    parcel_images,
    quickshift_decompose,
    slic_decompose,
)
from keras_interp.analysis.receptive_field import (
    ReceptiveField,
    receptive_fields,
    theoretical_receptive_field,
)

__all__ = [
    "COMPONENT_METHODS",
    "CRITERIA",
    "DECOMPOSITIONS",
    "SEARCH_CRITERIA",
    "GradientReceptiveField",
    "MaskedImageResult",
    "MinimalComponentResult",
    "MinimalImageResult",
    "MinimalParcelResult",
    "ReceptiveField",
    "channel_activation",
    "component_decompose",
    "empirical_receptive_field",
    "felzenszwalb_decompose",
    "gradient_receptive_field",
    "masked_image",
    "minimal_component_image",
    "minimal_parcel_image",
    "parcel_images",
    "quickshift_decompose",
    "receptive_fields",
    "slic_decompose",
    "theoretical_receptive_field",
]
