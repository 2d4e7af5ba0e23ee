"""Keras callbacks that watch explanations, concepts and explanation quality
evolve while a model trains, written for TensorBoard (or PNG files) without
ever slowing down or stopping `fit`.

- `ExplainCallback`: grids of maps of fixed images, their stability over
  epochs, and their agreement with known evidence masks.
- `ConceptCallback`: the TCAV score of named concepts, retrained each epoch.
- `MetricCallback`: faithfulness and localisation metrics per epoch.

All work with Keras 3 and `tf_keras` models, under `tf.distribute` strategies,
and with optional trackers (`logger="wandb"`, `"mlflow"` or an object).
"""

from __future__ import annotations

from keras_interp.callbacks._base import MAX_IMAGES, TrainingCallback
from keras_interp.callbacks._render import grid_size, rank_correlation, render_grid
from keras_interp.callbacks._sinks import tensorboard_available
from keras_interp.callbacks.concept import ConceptCallback
from keras_interp.callbacks.explain import ExplainCallback
from keras_interp.callbacks.metric import MetricCallback

__all__ = [
    "MAX_IMAGES",
    "ConceptCallback",
    "ExplainCallback",
    "MetricCallback",
    "TrainingCallback",
    "grid_size",
    "rank_correlation",
    "render_grid",
    "tensorboard_available",
]
