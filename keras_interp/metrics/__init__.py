"""Metrics of explanations: faithfulness, localisation, sanity, robustness,
complexity; `evaluate` scores methods side by side.

Every metric has the signature
`metric(model, x, y=None, *, method=None, maps=None, batch_size=32, seed=0,
**options) -> MetricResult` (localisation metrics also take `masks`), reads
the model's logits through `expose`, computes maps through the engine
(`explain`), builds and scores its perturbed copies in one compiled function,
chunked by `batch_size`, and returns per-image `values`, their `mean` and,
for curve metrics, `curves`.
"""

from __future__ import annotations

from collections.abc import Callable

from keras_interp.metrics._common import MetricResult
from keras_interp.metrics.complexity import complexity, sparseness
from keras_interp.metrics.evaluation import evaluate, plot_curves
from keras_interp.metrics.faithfulness import (
    deletion,
    faithfulness_correlation,
    insertion,
    mu_fidelity,
)
from keras_interp.metrics.localisation import (
    energy_pointing_game,
    pointing_game,
    relevance_mass,
    relevance_rank,
)
from keras_interp.metrics.road import noisy_linear_impute, road
from keras_interp.metrics.robustness import average_stability, max_sensitivity
from keras_interp.metrics.sanity import model_randomization, random_logit
from keras_interp.metrics.similarity import map_similarity

#: Metrics by name.
METRICS: dict[str, Callable] = {
    "deletion": deletion,
    "insertion": insertion,
    "mu_fidelity": mu_fidelity,
    "road": road,
    "faithfulness_correlation": faithfulness_correlation,
    "pointing_game": pointing_game,
    "relevance_mass": relevance_mass,
    "relevance_rank": relevance_rank,
    "energy_pointing_game": energy_pointing_game,
    "model_randomization": model_randomization,
    "random_logit": random_logit,
    "max_sensitivity": max_sensitivity,
    "average_stability": average_stability,
    "sparseness": sparseness,
    "complexity": complexity,
}

__all__ = [
    "METRICS",
    "MetricResult",
    "average_stability",
    "complexity",
    "deletion",
    "energy_pointing_game",
    "evaluate",
    "faithfulness_correlation",
    "insertion",
    "map_similarity",
    "max_sensitivity",
    "model_randomization",
    "mu_fidelity",
    "noisy_linear_impute",
    "plot_curves",
    "pointing_game",
    "random_logit",
    "relevance_mass",
    "relevance_rank",
    "road",
    "sparseness",
]
