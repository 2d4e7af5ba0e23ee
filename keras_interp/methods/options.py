"""Method options: their type, default and valid range (`OptionSpec`), read by
`check_options` before anything is traced."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_interp._validation import received

#: The default of an option that has none (a required option).
REQUIRED = inspect.Parameter.empty

_KINDS = ("any", "int", "float", "bool", "choice", "pair", "floats", "callable")


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option of a method or wrapper: its type, default and valid range.

    Build specs with the constructors (`OptionSpec.integer(low=1)`,
    `OptionSpec.number(low=0, high=1, include_low=False)`,
    `OptionSpec.choice("mean", "std")`, ...); `name` and `default` are filled
    from the function's signature by `method_record`.

    Attributes:
        type: `"any"`, `"int"`, `"float"`, `"bool"`, `"choice"`, `"pair"`
            (two positive ints), `"floats"` (a sequence of numbers) or
            `"callable"`.
        name: the keyword argument.
        default: the default value (`REQUIRED` if none).
        low, high: the closed range of numbers (`include_low`/`include_high`
            False for an open end); `None` for no bound.
        choices: the allowed values of a `"choice"`.
        optional: `None` is also accepted.
        check: an extra check `check(value, name)` raising ValueError or
            TypeError (e.g. a per-channel occluder).
        doc: one line for help texts.
    """

    type: str = "any"
    name: str = ""
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    include_low: bool = True
    include_high: bool = True
    choices: tuple = ()
    optional: bool = False
    check: Callable[[Any, str], Any] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _KINDS:
            raise ValueError(
                f"`type` must be one of {', '.join(_KINDS)}. "
                f"{received('type', self.type)}"
            )

    # ------------------------------------------------------------ constructors
    @classmethod
    def integer(cls, low: int | None = None, high: int | None = None, **kw: Any):
        """An integer in `[low, high]`."""
        return cls("int", low=low, high=high, **kw)

    @classmethod
    def number(cls, low: float | None = None, high: float | None = None, **kw: Any):
        """A finite real number in `[low, high]` (open ends by `include_*`)."""
        return cls("float", low=low, high=high, **kw)

    @classmethod
    def boolean(cls, **kw: Any) -> OptionSpec:
        """`True` or `False`."""
        return cls("bool", **kw)

    @classmethod
    def choice(cls, *choices: Any, **kw: Any) -> OptionSpec:
        """One of `choices`."""
        return cls("choice", choices=tuple(choices), **kw)

    @classmethod
    def pair(cls, **kw: Any) -> OptionSpec:
        """Two positive integers, e.g. a window `(width, height)`."""
        return cls("pair", low=1, **kw)

    @classmethod
    def numbers(cls, low: float | None = None, **kw: Any) -> OptionSpec:
        """A sequence of finite numbers, each `>= low` (or `> low`)."""
        return cls("floats", low=low, **kw)

    @classmethod
    def function(cls, **kw: Any) -> OptionSpec:
        """A callable."""
        return cls("callable", **kw)

    # -------------------------------------------------------------- checking
    @property
    def range(self) -> str:
        """The valid range as text, e.g. `"an integer >= 1"`."""
        what = {
            "any": "any value",
            "int": "an integer",
            "float": "a finite number",
            "bool": "a bool",
            "choice": "one of " + ", ".join(map(repr, self.choices)),
            "pair": "a pair of positive integers",
            "floats": "a sequence of finite numbers",
            "callable": "a callable",
        }[self.type]
        bounds = []
        if self.low is not None and self.type in ("int", "float", "floats"):
            bounds.append((">= " if self.include_low else "> ") + f"{self.low:g}")
        if self.high is not None and self.type in ("int", "float"):
            bounds.append(("<= " if self.include_high else "< ") + f"{self.high:g}")
        text = what + (" " + " and ".join(bounds) if bounds else "")
        return text + (" or None" if self.optional else "")

    def validate(self, value: Any, name: str | None = None) -> Any:
        """`value` in canonical form (ints, floats, tuples), or raise.

        Raises:
            TypeError: a value of the wrong type.
            ValueError: a value out of range.
        """
        name = name or self.name
        if value is None and self.optional:
            return None
        kind = self.type
        if kind == "int" or kind == "float":
            value = self._number(value, name, integer=kind == "int")
        elif kind == "bool" and not isinstance(value, (bool, np.bool_)):
            self._fail(TypeError, value, name)
        elif kind == "bool":
            value = bool(value)
        elif kind == "choice" and not _is_one_of(value, self.choices):
            self._fail(ValueError, value, name)
        elif kind == "pair":
            ok = isinstance(value, (tuple, list)) and len(value) == 2
            if not ok or not all(_is_int(v) and v >= 1 for v in value):
                self._fail(ValueError, value, name)
            value = (int(value[0]), int(value[1]))
        elif kind == "floats":
            if isinstance(value, (str, bytes)) or not _is_sequence(value):
                self._fail(ValueError, value, name)
            value = tuple(self._number(v, name, whole=value) for v in value)
        elif kind == "callable" and not callable(value):
            self._fail(TypeError, value, name)
        if self.check is not None:
            self.check(value, name)
        return value

    def _number(self, value: Any, name: str, integer: bool = False, whole=None):
        shown = value if whole is None else whole
        if integer and not _is_int(value):
            self._fail(TypeError, shown, name)
        if not integer and not _is_real(value):
            self._fail(TypeError, shown, name)
        value = int(value) if integer else float(value)
        low, high = self.low, self.high
        bad = not math.isfinite(value)
        if low is not None:
            bad = bad or value < low or (value == low and not self.include_low)
        if high is not None and self.type != "floats":
            bad = bad or value > high or (value == high and not self.include_high)
        if bad:
            self._fail(ValueError, shown, name)
        return value

    def _fail(self, error: type, value: Any, name: str) -> None:
        raise error(f"`{name}` must be {self.range}. {received(name, value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, bool)
    )


def _is_sequence(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _is_one_of(value: Any, choices: tuple) -> bool:
    try:
        return any(
            isinstance(value, type(c))
            and isinstance(value, bool) == isinstance(c, bool)
            and value == c
            for c in choices
        )
    except (TypeError, ValueError):
        return False


__all__ = ["REQUIRED", "OptionSpec"]
