"""Explain image collections on Apache Beam (`pip install keras-interp[beam]`).

- `ExplainModelHandler`: a RunInference `ModelHandler` running a method.
- `ExplainFiles`, `explain_files`: the `explain-files` pipeline (match,
  decode, explain, write sharded results, dead letters and a manifest).
- `map_summary`: the per-map statistics of a result row.

Importing this package needs `apache_beam`; names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "ExplainModelHandler": "keras_interp.beam.handler",
    "load_model": "keras_interp.beam.handler",
    "Explainer": "keras_interp.beam.explainer",
    "ExplainFiles": "keras_interp.beam.pipeline",
    "explain_files": "keras_interp.beam.pipeline",
    "METRICS_NAMESPACE": "keras_interp.beam.pipeline",
    "map_summary": "keras_interp.beam.summary",
    "ROW_SCHEMA": "keras_interp.beam.output",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in ("apache_beam", "pyarrow"):
            raise ImportError(
                f"keras_interp.beam.{name} needs Apache Beam: "
                "pip install 'keras-interp[beam]'"
            ) from error
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
