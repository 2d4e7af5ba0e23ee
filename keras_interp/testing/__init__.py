"""Test helpers: tiny models with known answers and the method contract check
(`assert_method_contract`), for the library's tests and for users' own
methods. Submodules load on first use (no TensorFlow import here)."""

from __future__ import annotations

from typing import Any

__all__ = ["assert_method_contract"]


def __getattr__(name: str) -> Any:
    if name == "assert_method_contract":
        from keras_interp.testing.contract import assert_method_contract

        return assert_method_contract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
