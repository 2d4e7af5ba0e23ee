"""Execute the tutorial notebooks and write their outputs into the `.ipynb` files.

Usage (from the repository root, with the `notebooks` extra installed:
nbclient, nbformat, ipykernel):

    .venv/bin/python scripts/execute_notebooks.py            # every notebook
    .venv/bin/python scripts/execute_notebooks.py notebooks/attribution.ipynb

Each notebook runs in a fresh Python 3 kernel of the current interpreter, with
its own folder as working directory, matplotlib's inline backend and
TensorFlow's start-up log noise turned off. Outputs are written back in place
(execution counts kept, so the committed notebook reads as a finished run).
The test suite does not need Jupyter: `tests/test_notebooks.py` re-runs the
code cells in-process and checks that the committed notebooks carry outputs.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: TensorFlow's C++ start-up log lines (`I0000 00:00:... port.cc:153] ...`),
#: which no environment variable fully silences in TF 2.21.
_START_UP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\).*"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*)$"
)


def drop_start_up_noise(notebook) -> None:
    """Remove TensorFlow's start-up log lines from the stderr outputs."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                lines = output.text.splitlines(keepends=True)
                output.text = "".join(
                    line for line in lines if not _START_UP_NOISE.match(line.strip())
                )
                if not output.text.strip():
                    continue
            kept.append(output)
        cell.outputs = kept


def execute(path: pathlib.Path, timeout: int) -> float:
    """Run every cell of the notebook at `path` and save it with its outputs.

    Args:
        path: an `.ipynb` file.
        timeout: seconds allowed per cell.

    Returns:
        The seconds the notebook took.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised; the notebook is
            not written.
    """
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no timestamps: re-running changes only outputs
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    drop_start_up_noise(notebook)
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    # Inherited by the kernels: quiet TensorFlow, no GPU probing noise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for path in paths:
        seconds = execute(path.resolve(), args.timeout)
        size = path.stat().st_size / 1e6
        print(f"{path.name}: executed in {seconds:.0f} s, {size:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
