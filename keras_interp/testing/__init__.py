"""Test helpers: tiny models with known answers and the method contract table."""
