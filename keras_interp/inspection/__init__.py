"""Model inspection: find layers at any depth and expose their activations."""

from keras_interp.inspection.dataflow import (
    SOURCE,
    DataFlow,
    DependencyError,
    LayerSpec,
    Node,
    State,
    build_node,
    layer_builder,
    node_builder,
)
from keras_interp.inspection.expose import expose, select_output
from keras_interp.inspection.graph import find_layer, has_graph, iter_layers
from keras_interp.inspection.heads import (
    biases,
    get_global_pooling_layer,
    get_logits_layer,
    layers_with_biases,
)
from keras_interp.inspection.layer_flow import (
    InputSizeError,
    LayerGraph,
    build_layer,
    sample_patches,
    sample_patches_from_data,
)
from keras_interp.inspection.targets import Target
from keras_interp.inspection.units import gather_units

__all__ = [
    "select_output",
    "SOURCE",
    "DataFlow",
    "DependencyError",
    "InputSizeError",
    "LayerGraph",
    "LayerSpec",
    "Node",
    "State",
    "Target",
    "biases",
    "build_layer",
    "build_node",
    "expose",
    "find_layer",
    "gather_units",
    "get_global_pooling_layer",
    "get_logits_layer",
    "has_graph",
    "iter_layers",
    "layer_builder",
    "layers_with_biases",
    "node_builder",
    "sample_patches",
    "sample_patches_from_data",
]
