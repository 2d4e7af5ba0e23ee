"""Concepts: CAVlib's concept activation vectors, and TCAV's significance test.

`train_cav` teaches a concept from a handful of example images, `CAV.score` and
`CAV.sort` rank any image by it, `CAV.load` / `CAV.save` read and write
CAVlib's `.cav` files; `model_layer` is one of CAVlib's strings
(`"googlenet_4d"`, `"googlenet_5b"`, `"mobilenet_12d"`) or a `(model,
layer_ref)` pair for any Keras or frozen-graph model. `tcav` tests whether a
class's logit is sensitive to a concept, against random concepts.
"""

from keras_interp.concepts.activations import (
    CAVableImage,
    batch_activations,
    compute_activations,
)
from keras_interp.concepts.cav import CAV
from keras_interp.concepts.directional import directional_derivatives, tcav_score
from keras_interp.concepts.results import TCAVResult
from keras_interp.concepts.significance import relative_tcav, tcav
from keras_interp.concepts.train import TrainingImage, train_cav

__all__ = [
    "CAV",
    "CAVableImage",
    "TCAVResult",
    "TrainingImage",
    "batch_activations",
    "compute_activations",
    "directional_derivatives",
    "relative_tcav",
    "tcav",
    "tcav_score",
    "train_cav",
]
