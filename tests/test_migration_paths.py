"""keras-explainable's module paths keep working in keras_interp.

Every public function the reference documents under
`keras_explainable.methods.<module>` resolves under
`keras_interp.methods.<module>` to the very function the registry returns
for that name, so code written against keras-explainable's paths runs the
same methods as code that names them.
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

REFERENCE = pathlib.Path("/work/shared/reference/keras-explainable-methods.txt")
if not REFERENCE.exists():
    REFERENCE = pathlib.Path(__file__).parent / "data" / "keras-explainable-methods.txt"

_MODULE = re.compile(r"^keras_explainable\.methods\.(\w+) module\s*$")
_FUNCTION = re.compile(r"^([a-z_][a-z0-9_]*)\(")


def reference_names(text: str) -> list[tuple[str, str]]:
    """`(module, name)` for each `name(` header under a module heading."""
    found, module = [], None
    for line in text.splitlines():
        heading = _MODULE.match(line)
        if heading:
            module = heading.group(1)
            continue
        header = _FUNCTION.match(line)
        if module and header:
            found.append((module, header.group(1)))
    return found


def _names() -> list[tuple[str, str]]:
    if not REFERENCE.exists():
        return []
    return reference_names(REFERENCE.read_text())


NAMES = _names()


def test_reference_is_parsed():
    if not REFERENCE.exists():
        pytest.skip("the keras-explainable reference text is not available")
    modules = {module for module, _ in NAMES}
    assert modules == {"cams", "gradient", "meta"}
    assert ("cams", "scorecam") in NAMES
    assert ("gradient", "full_gradients") in NAMES
    assert ("meta", "tta") in NAMES
    assert len(NAMES) == 8


def test_parser_ignores_prose_and_examples():
    text = (
        "keras_explainable.methods.cams module\n"
        "cam(model, inputs)[source]\n"
        "scores, cams = ke.methods.cams.cam(model, x, y)\n"
        "  gradcam(model)\n"
        "keras_explainable.methods.meta module\n"
        "smooth(method, repetitions=20)[source]\n"
    )
    assert reference_names(text) == [("cams", "cam"), ("meta", "smooth")]


def _registered(name: str):
    methods = importlib.import_module("keras_interp.methods")
    if name in methods.WRAPPERS:
        return methods.WRAPPERS[name]
    return methods.get(name)


@pytest.mark.parametrize(("module", "name"), NAMES, ids=[f"{m}.{n}" for m, n in NAMES])
def test_keras_explainable_path_resolves_to_the_registered_function(module, name):
    resolved = getattr(importlib.import_module(f"keras_interp.methods.{module}"), name)
    assert resolved is _registered(name)
    assert resolved is getattr(importlib.import_module("keras_interp.methods"), name)


@pytest.mark.parametrize(
    "path",
    [
        "keras_interp.explain",
        "keras_interp.inspection.expose",
        "keras_interp.inspection.get_logits_layer",
        "keras_interp.inspection.layers_with_biases",
        "keras_interp.filters.normalize",
        "keras_interp.filters.positive_normalize",
        "keras_interp.filters.absolute_normalize",
        "keras_interp.filters.negative",
        "keras_interp.filters.positive",
        "keras_interp.methods.cams.gradcam",
        "keras_interp.methods.gradient.gradients",
        "keras_interp.methods.meta.smooth",
        "keras_interp.methods.meta.tta",
    ],
)
def test_keras_explainable_top_level_paths(path):
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
