"""The documentation site: `mkdocs build --strict` passes and the API reference
renders a docstring for every public name of every public package."""

from __future__ import annotations

import html
import importlib
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent

#: Packages whose public names must each have a rendered entry in docs/api/.
PACKAGES = (
    "analysis",
    "beam",
    "callbacks",
    "concepts",
    "engine",
    "filters",
    "images",
    "inspection",
    "methods",
    "metrics",
    "models",
    "serving",
    "synthesis",
    "visualization",
)


def public_names(package: str) -> list[str]:
    """The names a user imports from `keras_interp.<package>`."""
    module = importlib.import_module(f"keras_interp.{package}")
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
            and (callable(value) or isinstance(value, type))
        ]
    return sorted(names)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    if shutil.which("mkdocs", path=str(pathlib.Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: `pip install -e .[test]` installs it")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def anchors(site: pathlib.Path, package: str) -> set[str]:
    page = site / "api" / package / "index.html"
    assert page.exists(), f"docs/api/{package}.md is missing from the site"
    return set(map(html.unescape, re.findall(r'id="([^"]+)"', page.read_text())))


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_rendered(site, package):
    found = anchors(site, package)
    missing = [
        name
        for name in public_names(package)
        if f"keras_interp.{package}.{name}" not in found
    ]
    assert not missing, f"keras_interp.{package}: no rendered entry for {missing}"


def test_every_page_in_nav_exists():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r":\s*([\w/.-]+\.md)\s*$", config, flags=re.MULTILINE)
    assert pages, "mkdocs.yml lists no pages"
    missing = [page for page in pages if not (ROOT / "docs" / page).exists()]
    assert not missing
