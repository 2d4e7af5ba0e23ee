"""One record per method: everything the library knows about a method, declared
where the method is defined.

```python
@method_record(family="cam", exposed=True, postprocessing=positive_normalize)
def gradcam(model, inputs, indices=None, *, spatial_axis=(-3, -2)): ...
```

The registry (`METHODS`, `EXPOSED`, `get`), the shortcuts (their natural
post-processing, the model they expose), option checking (`check_options`),
the contract table and the consumers (CLI, callbacks, serving, metrics) all
read these records: adding a method touches its own file and its tests.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from keras_interp._validation import received
from keras_interp.methods.options import REQUIRED, OptionSpec

FAMILIES = ("cam", "gradient", "perturbation", "activation")

#: Options every method takes (the contract), whatever its record says.
CONTRACT_OPTIONS = ("spatial_axis",)


@dataclasses.dataclass(frozen=True)
class MethodRecord:
    """Everything the library needs to know about one attribution method.

    Attributes:
        name: the registry name (`"gradcam"`).
        function: the method `fn(model, inputs, indices=None, *,
            spatial_axis=(-3, -2), **options) -> (logits, maps)`.
        family: `"cam"`, `"gradient"`, `"perturbation"` or `"activation"`.
        exposed: whether it takes an exposed model `[scores, activations...]`.
        exposer: how a plain model is exposed for it (`expose`, or
            `full_gradients_model` for FullGrad); `None` when not exposed.
        postprocessing: its natural post-processing (what shortcuts apply).
        signed: whether the sign of its maps matters (diverging colour maps).
        options: option name -> `OptionSpec` (defaults from the signature).
        open_options: the function takes `**options`: any name is accepted.
        shortcut: whether `keras_interp.<name>(model, x, y)` exists.
    """

    name: str
    function: Callable
    family: str
    exposed: bool = False
    exposer: Callable | None = None
    postprocessing: Callable | None = None
    signed: bool = False
    options: Mapping[str, OptionSpec] = dataclasses.field(default_factory=dict)
    open_options: bool = False
    shortcut: bool = False


@dataclasses.dataclass(frozen=True)
class WrapperRecord:
    """A meta wrapper `wrapper(method, **options) -> method` (`smooth`, `tta`).

    Attributes:
        name: the registry name (`"smooth"`).
        function: the wrapper factory.
        options: option name -> `OptionSpec` of the factory's options.
    """

    name: str
    function: Callable
    options: Mapping[str, OptionSpec] = dataclasses.field(default_factory=dict)


_RECORDS: dict[str, MethodRecord] = {}
_WRAPPER_RECORDS: dict[str, WrapperRecord] = {}
_FUNCTIONS: dict[str, Callable] = {}
_WRAPPER_FUNCTIONS: dict[str, Callable] = {}
_BY_FUNCTION: dict[Any, MethodRecord] = {}

#: Read-only live views: name -> record.
RECORDS: Mapping[str, MethodRecord] = MappingProxyType(_RECORDS)
WRAPPER_RECORDS: Mapping[str, WrapperRecord] = MappingProxyType(_WRAPPER_RECORDS)
#: Read-only live views: name -> function (`methods.METHODS`, `methods.WRAPPERS`).
METHODS: Mapping[str, Callable] = MappingProxyType(_FUNCTIONS)
WRAPPERS: Mapping[str, Callable] = MappingProxyType(_WRAPPER_FUNCTIONS)


def options_of(
    function: Callable, declared: Mapping[str, OptionSpec] | None, skip: int
) -> tuple[dict[str, OptionSpec], bool]:
    """The option specs of `function`: every parameter after the first `skip`
    (and after `spatial_axis`), declared specs taking their name and default
    from the signature, undeclared ones accepting any value."""
    declared = dict(declared or {})
    parameters = list(inspect.signature(function).parameters.values())
    open_options = any(p.kind is p.VAR_KEYWORD for p in parameters)
    options = {}
    for parameter in parameters[skip:]:
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if parameter.name in CONTRACT_OPTIONS:
            continue
        spec = declared.pop(parameter.name, OptionSpec())
        options[parameter.name] = dataclasses.replace(
            spec, name=parameter.name, default=parameter.default
        )
    if declared:
        raise ValueError(
            f"Options {sorted(declared)} are declared but not parameters of "
            f"{getattr(function, '__name__', function)!r}. "
            f"{received('options', sorted(declared))}"
        )
    return options, open_options


def add_record(record: MethodRecord) -> MethodRecord:
    """Store `record` (the registry's one write path)."""
    if record.family not in FAMILIES:
        raise ValueError(
            f"`family` must be one of {', '.join(FAMILIES)}. "
            f"{received('family', record.family)}"
        )
    if record.name in _RECORDS or record.name in _WRAPPER_RECORDS:
        raise ValueError(
            f"A method named {record.name!r} exists. {received('name', record.name)}"
        )
    _RECORDS[record.name] = record
    _FUNCTIONS[record.name] = record.function
    try:
        _BY_FUNCTION.setdefault(record.function, record)
    except TypeError:  # an unhashable callable: found by name only
        pass
    return record


def method_record(
    name: str | None = None,
    *,
    family: str,
    exposed: bool = False,
    exposer: Callable | None = None,
    postprocessing: Callable | None = None,
    signed: bool = False,
    shortcut: bool = True,
    options: Mapping[str, OptionSpec] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator registering the method it decorates (Keras' `keras_export`
    style: the name is declared where the method is defined).

    Args:
        name: the registry name. Defaults to the function's `__name__`.
        family: `"cam"`, `"gradient"`, `"perturbation"` or `"activation"`.
        exposed: whether the method takes an exposed model.
        exposer: `exposer(model) -> exposed model`; defaults to `expose` when
            `exposed`.
        postprocessing: the natural post-processing, a `keras_interp.filters`
            function.
        signed: whether the sign of the maps matters.
        shortcut: make `keras_interp.shortcuts.<name>`.
        options: declared specs of some options; the others accept any value.

    Returns:
        A decorator returning the function unchanged.
    """

    def decorate(function: Callable) -> Callable:
        specs, open_options = options_of(function, options, skip=3)
        chosen = exposer
        if exposed and chosen is None:
            from keras_interp.inspection.expose import expose

            chosen = expose
        add_record(
            MethodRecord(
                name=name or function.__name__,
                function=function,
                family=family,
                exposed=exposed,
                exposer=chosen if exposed else None,
                postprocessing=postprocessing,
                signed=signed,
                options=MappingProxyType(specs),
                open_options=open_options,
                shortcut=shortcut,
            )
        )
        return function

    return decorate


def wrapper_record(
    name: str | None = None, *, options: Mapping[str, OptionSpec] | None = None
) -> Callable[[Callable], Callable]:
    """Decorator registering a meta wrapper `wrapper(method, **options)`."""

    def decorate(function: Callable) -> Callable:
        specs, _ = options_of(function, options, skip=1)
        key = name or function.__name__
        if key in _RECORDS or key in _WRAPPER_RECORDS:
            raise ValueError(f"A method named {key!r} exists. {received('name', key)}")
        _WRAPPER_RECORDS[key] = WrapperRecord(key, function, MappingProxyType(specs))
        _WRAPPER_FUNCTIONS[key] = function
        return function

    return decorate


def find_record(function: Any) -> MethodRecord | None:
    """The record of `function`, looking through wrappers (`__wrapped__`) and
    `functools.partial`; `None` for a function that has none."""
    seen = set()
    while function is not None and id(function) not in seen:
        seen.add(id(function))
        try:
            found = _BY_FUNCTION.get(function)
        except TypeError:
            found = None
        if found is not None:
            return found
        function = getattr(function, "__wrapped__", None) or getattr(
            function, "func", None
        )
    return None


def freeze(value: Any) -> Any:
    """A hashable stand-in for an option value: lists, tuples and dicts by
    content (type-tagged), arrays by bytes; raise TypeError if unhashable."""
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return "dict", tuple(sorted((repr(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        return "array", array.dtype.str, array.shape, array.tobytes()
    hash(value)
    return type(value), value


_MEMO: collections.OrderedDict = collections.OrderedDict()
MEMO_SIZE = 1024


def memoized(key: Any, build: Callable[[], Callable]) -> Callable:
    """`build()` once per hashable `key` (the last `MEMO_SIZE` keys), so a
    wrapper built twice with the same options is the same object: the engine's
    compiled-function cache then finds it."""
    try:
        hash(key)
    except TypeError:
        return build()
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = _MEMO[key] = build()
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


__all__ = [
    "FAMILIES",
    "METHODS",
    "RECORDS",
    "REQUIRED",
    "WRAPPERS",
    "WRAPPER_RECORDS",
    "MethodRecord",
    "OptionSpec",
    "WrapperRecord",
    "find_record",
    "freeze",
    "memoized",
    "method_record",
    "wrapper_record",
]
