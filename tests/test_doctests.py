"""The docstring examples of every keras_interp module, run as doctests.

Each module's examples run in the module's namespace plus `np`, `tf`, `keras`,
`keras_interp`, `expose` and the tiny test models (`gap_dense`, `linear`), so
an example reads as written in the docs. Modules whose examples need what a
test machine does not have are skipped below, each with its reason.
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

#: module -> why its examples are not run.
SKIPPED: dict[str, str] = {}

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_interp.__path__, "keras_interp.")
    if not info.name.split(".")[-1].startswith("__")
)


def globs() -> dict:
    from keras_interp.inspection import expose
    from keras_interp.testing.models import gap_dense, linear

    return {
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
