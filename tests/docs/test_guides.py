"""Every marked example of the guides (and of the migration guides not run by
`test_migration.py`) runs, as written.

The guide pages mark their examples with `<!-- test -->` (the convention of
`test_migration.py`, whose extractor this reuses): each page's blocks run in
order in one namespace, one test item per block.
"""

from __future__ import annotations

import pathlib

import pytest
from test_migration import ROOT, extract_blocks

PAGES = (
    "docs/getting-started.md",
    "docs/targets.md",
    "docs/concepts.md",
    "docs/synthesis.md",
    "docs/analysis.md",
    "docs/models.md",
    "docs/index.md",
    "docs/methods.md",
    "docs/engine.md",
    "docs/inspection.md",
    "docs/migration/dnnbrain.md",
    "docs/migration/glimpse.md",
    "docs/migration/leap.md",
    "docs/migration/tf-explain.md",
    "docs/migration/tf-keras-vis.md",
    "docs/migration/xplique.md",
)


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


def test_every_guide_has_a_tested_example():
    missing = [page for page in PAGES if not extract_blocks((ROOT / page).read_text())]
    assert not missing


@pytest.mark.parametrize(("page", "number", "code"), _cases())
def test_guide_block_runs(page, number, code, monkeypatch):
    namespace = _NAMESPACES.setdefault(page, {"__name__": "__guide__"})
    monkeypatch.chdir(ROOT)
    exec(compile(code, f"{page}[{number}]", "exec"), namespace)
