"""Test helpers: tiny models with known answers and the method contract check
(`assert_method_contract`)."""

from keras_interp.testing.contract import assert_method_contract

__all__ = ["assert_method_contract"]
