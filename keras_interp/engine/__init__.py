"""Run attribution methods over data: batching, compilation, distribution."""

from __future__ import annotations

from keras_interp.engine.compiled import clear_cache, compiled_function
from keras_interp.engine.explaining import explain, partial_explain
from keras_interp.engine.models import resolve_model

__all__ = [
    "clear_cache",
    "compiled_function",
    "explain",
    "partial_explain",
    "resolve_model",
]
