"""Models behind CAVlib's interface: Keras models, frozen graphs, SavedModels.

`Model` is CAVlib's interface (images in, flattened activations out, plus the
gradients TCAV needs); `KerasModel` wraps any Keras model, `FrozenGraphModel`
any frozen GraphDef `.pb`, `load_saved_model` any SavedModel or TF-Hub model;
`GooglenetModel` and `MobilenetModel` are CAVlib's two networks, and
`resolve_model_layer` turns CAVlib's `model_layer` strings (`MODEL_LAYERS`) or
a `(model, layer)` pair into a model and a layer name.
"""

from keras_interp.models.base import KerasModel, Model
from keras_interp.models.download import ChecksumError, DownloadError
from keras_interp.models.frozen import FrozenFunction, FrozenGraphModel, load_graph_def
from keras_interp.models.saved import freeze_function, load_saved_model
from keras_interp.models.zoo import (
    MODEL_LAYERS,
    GooglenetModel,
    MobilenetModel,
    clear_model_cache,
    get_model,
    resolve_model_layer,
)

__all__ = [
    "MODEL_LAYERS",
    "ChecksumError",
    "DownloadError",
    "FrozenFunction",
    "FrozenGraphModel",
    "GooglenetModel",
    "KerasModel",
    "MobilenetModel",
    "Model",
    "clear_model_cache",
    "freeze_function",
    "get_model",
    "load_graph_def",
    "load_saved_model",
    "resolve_model_layer",
]
