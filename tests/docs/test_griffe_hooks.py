"""The griffe extensions of the API reference (docs/_hooks/lazy_exports.py)."""

from __future__ import annotations

import importlib
import importlib.util

import griffe
import pytest
from test_migration import ROOT


@pytest.fixture(scope="module")
def hooks():
    path = ROOT / "docs" / "_hooks" / "lazy_exports.py"
    spec = importlib.util.spec_from_file_location("lazy_exports", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package(hooks):
    extensions = griffe.load_extensions(hooks.LazyExports(), hooks.ExampleSections())
    return griffe.load("keras_interp", search_paths=[str(ROOT)], extensions=extensions)


@pytest.mark.parametrize("name", ["serving", "beam"])
def test_lazy_packages_export_their_table(package, name):
    # importing the package itself needs neither TensorFlow nor Apache Beam
    runtime = importlib.import_module(f"keras_interp.{name}")
    module = package.members[name]
    assert sorted(module.exports) == sorted(runtime.__all__)
    for export in module.exports:
        alias = module.members[export]
        assert alias.path == f"keras_interp.{name}.{export}"
        assert alias.final_target.path == f"{runtime._NAMES[export]}.{export}"


def test_function_shadowing_its_module_resolves_to_the_function(package):
    export = package.members["serving"].members["export"]
    assert export.final_target.is_function
    assert export.final_target.path == "keras_interp.serving.exporting.export"


def test_example_sections_are_parsed_as_examples(package):
    function = package.members["serving"].members["export"].final_target
    kinds = [section.kind.value for section in function.docstring.parse("google")]
    assert "examples" in kinds


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("inspection.expose", "keras_interp.inspection.expose.expose"),
        ("methods.scorecam", "keras_interp.methods.scorecam.scorecam"),
        ("methods.record", "keras_interp.methods.registry.record"),
        ("metrics.road", "keras_interp.metrics.road.road"),
    ],
)
def test_names_shadowing_a_submodule_resolve_as_at_run_time(package, path, target):
    name, attribute = path.split(".")
    member = package.members[name].members[attribute]
    assert member.final_target.path == target
    runtime = getattr(importlib.import_module(f"keras_interp.{name}"), attribute)
    assert f"{runtime.__module__}.{runtime.__name__}" == target


def test_names_computed_by_getattr_are_documented(package):
    exposed = package.members["methods"].members["EXPOSED"]
    assert exposed.is_attribute
    assert "exposed model" in exposed.docstring.value
