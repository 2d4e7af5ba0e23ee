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

#: module -> why its examples are not run (none now: keep it empty).
SKIPPED: dict[str, str] = {}

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


def test_skipped_names_are_modules():
    stale = sorted(set(SKIPPED) - set(MODULES))
    assert not stale, f"SKIPPED names modules that do not exist: {stale}"


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
