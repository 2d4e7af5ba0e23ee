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
