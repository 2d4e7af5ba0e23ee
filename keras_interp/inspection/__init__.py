"""Model inspection: find layers at any depth and expose their activations."""

from keras_interp.inspection.expose import expose
from keras_interp.inspection.graph import find_layer, has_graph, iter_layers
from keras_interp.inspection.heads import (
    biases,
    get_global_pooling_layer,
    get_logits_layer,
    layers_with_biases,
)
from keras_interp.inspection.targets import Target
from keras_interp.inspection.units import gather_units

__all__ = [
    "Target",
    "biases",
    "expose",
    "find_layer",
    "gather_units",
    "get_global_pooling_layer",
    "get_logits_layer",
    "has_graph",
    "iter_layers",
    "layers_with_biases",
]
