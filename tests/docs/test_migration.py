"""The keras_interp code of the migration guides runs, as written.

A fenced ```python block right after a line `<!-- test -->` in a page listed in
`PAGES` is executed; the marked blocks of one page run in order in one
namespace (a page reads like a notebook: the first block builds the tiny
model the others use). Each block is one test item, named by the page and
the heading above it, so a failure points at the block (a block that fails
leaves the names it would have defined undefined for the next ones). Blocks
assert their own numbers; a block that raises fails its test.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[2]
PAGES = ("docs/migration/keras-explainable.md", "docs/migration/cavlib.md")
MARKER = "<!-- test -->"

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M
)


def extract_blocks(text: str) -> list[tuple[str, str]]:
    """`(heading, code)` of every python block that follows the marker.

    The marker must be the last non-blank line before the block's fence; the
    block's indentation (e.g. inside an admonition) is removed.
    """
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        headings = [line for line in before if line.startswith("#")]
        heading = headings[-1].lstrip("# ").strip() if headings else "top"
        if not before or before[-1].strip() != MARKER:
            continue
        indent = match.group("indent")
        body = "".join(
            line[len(indent) :] if line.startswith(indent) else line
            for line in match.group("body").splitlines(keepends=True)
        )
        blocks.append((heading, body))
    return blocks


def _cases() -> list:
    cases = []
    for page in PAGES:
        path = ROOT / page
        blocks = extract_blocks(path.read_text()) if path.exists() else []
        for number, (heading, code) in enumerate(blocks):
            name = f"{pathlib.Path(page).stem}:{number:02d}:{heading}"
            cases.append(pytest.param(page, number, code, id=name))
    return cases


_NAMESPACES: dict[str, dict] = {}


def test_pages_have_tested_blocks():
    for page in PAGES:
        assert len(extract_blocks((ROOT / page).read_text())) >= 5, page


def test_extractor_needs_the_marker_right_before_the_block():
    text = (
        "# A\n<!-- test -->\n\n```python\na = 1\n```\n"
        "```python\nnot_run()\n```\n"
        "## B\n<!-- test -->\n    ```python\n    b = 2\n    ```\n"
    )
    assert extract_blocks(text) == [("A", "a = 1\n"), ("B", "b = 2\n")]


@pytest.mark.parametrize(("page", "number", "code"), _cases())
def test_block_runs(page, number, code, monkeypatch):
    namespace = _NAMESPACES.setdefault(page, {"__name__": "__migration__"})
    monkeypatch.chdir(ROOT)  # the pages read CAVlib's sample data from tests/data
    exec(compile(code, f"{page}[{number}]", "exec"), namespace)
