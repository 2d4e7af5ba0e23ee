"""The registry: methods by name, spec strings, records and option checks.

Everything here reads the records declared beside each method
(`keras_interp.methods.record`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import Any

from keras_interp._validation import closest, received
from keras_interp.methods.record import (
    _WRAPPER_RECORDS,
    CONTRACT_OPTIONS,
    METHODS,
    WRAPPERS,
    MethodRecord,
    add_record,
    find_record,
    freeze,
    memoized,
    options_of,
)


def register(
    name: str,
    method: Callable,
    *,
    exposed: bool = False,
    family: str = "gradient",
    exposer: Callable | None = None,
    postprocessing: Callable | None = None,
    signed: bool = False,
) -> Callable:
    """Add a method to the registry (e.g. your own), so specs can name it.

    The method gets a record like the built-in ones (options read from its
    signature, accepting any value); `method_record` declares more.

    Args:
        name: the name specs use; must be an identifier not taken.
        method: a function following the method contract.
        exposed: whether it takes an exposed model.
        family: `"cam"`, `"gradient"`, `"perturbation"` or `"activation"`.
        exposer: how shortcuts expose a plain model for it (default `expose`).
        postprocessing: its natural post-processing.
        signed: whether the sign of its maps matters.

    Returns:
        `method`, so `register` can be used as `register("m", m)`.

    Raises:
        ValueError: a bad or taken name, or an unknown family.
        TypeError: `method` is not callable.

    Example:
        >>> def doubled(model, inputs, indices=None, *, spatial_axis=(-3, -2)):
        ...     return gradients(model, inputs, indices, spatial_axis=spatial_axis)
        >>> _ = register("doubled_example", doubled)
        >>> get("smooth(doubled_example, seed=0)").__name__
        'doubled_smooth'
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be an identifier. {received('name', name)}")
    if name in METHODS or name in WRAPPERS:
        raise ValueError(f"A method named {name!r} exists. {received('name', name)}")
    if not callable(method):
        raise TypeError(f"`method` must be callable. {received('method', method)}")
    try:
        options, open_options = options_of(method, None, skip=3)
    except (TypeError, ValueError):  # no signature: accept any option
        options, open_options = {}, True
    if exposed and exposer is None:
        from keras_interp.inspection.expose import expose

        exposer = expose
    add_record(
        MethodRecord(
            name=name,
            function=method,
            family=family,
            exposed=exposed,
            exposer=exposer if exposed else None,
            postprocessing=postprocessing,
            signed=signed,
            options=options,
            open_options=open_options,
        )
    )
    get.cache_clear()
    _from_spec.cache_clear()
    return method


def record(method: str | Callable) -> MethodRecord:
    """The record of a method: its name, spec or function, wrapped or not.

    Wrappers (`__wrapped__`), spec defaults and `functools.partial` are looked
    through: `record(smooth(gradcam))` is gradcam's record.

    Raises:
        ValueError: a function with no record (register it), or a bad spec.

    Example:
        >>> record("smooth(gradcam)").exposed
        True
        >>> record(occlusion).options["window"].range
        'a pair of positive integers'
    """
    function = get(method)
    found = find_record(function)
    if found is None:
        raise ValueError(
            "This method has no record: register it with "
            "`keras_interp.methods.register(name, method)`. "
            f"{received('method', getattr(function, '__name__', function))}"
        )
    return found


def needs_exposed(method: Any) -> bool:
    """Whether `method` (a name, spec or function, wrapped or not) explains an
    intermediate layer and so takes an exposed model."""
    found = find_record(get(method) if isinstance(method, str) else method)
    return bool(found and found.exposed)


def _layers(function: Any) -> list[tuple[str, Any]]:
    """The wrapping layers of a method, outermost first: `("wrapper", record
    or None)`, `("partial", keywords)`, and last `("method", function)`."""
    from keras_interp.methods.meta import wrapper_of

    layers: list[tuple[str, Any]] = []
    seen = set()
    while id(function) not in seen:
        seen.add(id(function))
        found = find_record(function)
        if found is not None and found.function is function:
            break
        info = wrapper_of(function)
        if info is not None:
            layers.append(("wrapper", info))
            function = function.__wrapped__
        elif isinstance(function, functools.partial):
            layers.append(("partial", function.keywords))
            function = function.func
        elif hasattr(function, "__wrapped__"):
            function = function.__wrapped__
        else:
            break
    layers.append(("method", function))
    return layers


def check_options(method: str | Callable, options: dict) -> dict:
    """Check the options a method will be called with, before any tracing.

    Names are checked against the method's record (through wrappers, spec
    defaults and `functools.partial`; a function without a record against its
    signature, `**kwargs` accepting anything), values against each option's
    type and range. `spatial_axis` is accepted for every method.

    Args:
        method: a name, spec string or method.
        options: option name -> value, as given to the method's call.

    Returns:
        The options, values in canonical form (e.g. pairs as tuples of ints).

    Raises:
        ValueError: an unknown option (the message lists the valid ones and the
            closest match), a value out of range, or a wrapper's own option
            given at call time.
        TypeError: `options` is not a dict, or a value of the wrong type.

    Example:
        >>> check_options("occlusion", {"window": [4, 4]})
        {'window': (4, 4)}
        >>> check_options(occlusion, {"windw": (4, 4)})
        Traceback (most recent call last):
        ...
        ValueError: Unknown option 'windw' of method 'occlusion'. Did you mean 'window'? Valid options: batch_size, incremental, occluder, spatial_axis, stride, window. Received: windw=(4, 4)
    """  # noqa: E501
    if not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict. {received('options', options)}")
    function = get(method)
    *outer, (_, base) = _layers(function)
    found = find_record(base)
    if found is not None and found.function is base:
        specs, open_options, label = found.options, found.open_options, found.name
    else:
        specs, open_options = _signature_options(base)
        label = getattr(base, "__name__", type(base).__name__)
    for kind, info in outer:
        if kind != "wrapper":
            continue
        wrapper = info[0]
        for name in options:
            if name in wrapper.options and name not in specs:
                raise ValueError(
                    f"`{name}` is an option of the wrapper `{wrapper.name}`: give "
                    f"it when building the wrapper, `{wrapper.name}(method, "
                    f"{name}=...)`, not when calling it. "
                    f"{received(name, options[name])}"
                )
    checked = {}
    for name, value in options.items():
        if name in specs:
            spec = specs[name]
            checked[name] = spec.validate(value, name)
        elif name in CONTRACT_OPTIONS or open_options:
            checked[name] = value
        else:
            valid = sorted({*specs, *CONTRACT_OPTIONS})
            hints = closest(str(name), valid, n=1)
            hint = f" Did you mean {hints[0]!r}?" if hints else ""
            raise ValueError(
                f"Unknown option {name!r} of method {label!r}.{hint} Valid "
                f"options: {', '.join(valid)}. {received(str(name), value)}"
            )
    return checked


def _signature_options(function: Callable) -> tuple[dict, bool]:
    try:
        return options_of(function, None, skip=3)
    except (TypeError, ValueError):  # no signature (a builtin): anything goes
        return {}, True


# ------------------------------------------------------------------- specs
@functools.lru_cache(maxsize=256)
def _from_spec(spec: str) -> Callable:
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(
            f"Cannot parse the method spec: {error.msg}. {received('spec', spec)}"
        ) from None
    return _build(tree, spec)


def _build(node: ast.AST, spec: str) -> Callable:
    if isinstance(node, ast.Name):
        if node.id in METHODS:
            return METHODS[node.id]
        return _unknown(node.id, spec)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name not in WRAPPERS and name not in METHODS:
            return _unknown(name, spec)
        try:
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise ValueError(
                f"Spec options must be literals. {received('spec', spec)}"
            ) from None
        if name in METHODS:  # "occlusion(window=(5, 5))": a method with defaults
            if node.args:
                raise ValueError(
                    f"Method {name!r} takes options by keyword only in a spec. "
                    f"{received('spec', spec)}"
                )
            return with_defaults(METHODS[name], kwargs)
        if len(node.args) != 1:
            raise ValueError(
                f"Wrapper {name!r} takes exactly one method. {received('spec', spec)}"
            )
        _check_wrapper_options(name, kwargs)
        return WRAPPERS[name](_build(node.args[0], spec), **kwargs)
    raise ValueError(
        "A method spec is a name or wrapper calls, e.g. 'smooth(gradcam)'. "
        f"{received('spec', spec)}"
    )


def _check_wrapper_options(name: str, kwargs: dict) -> None:
    valid = sorted(_WRAPPER_RECORDS[name].options)
    for key, value in kwargs.items():
        if key not in valid:
            hints = closest(key, valid, n=1)
            hint = f" Did you mean {hints[0]!r}?" if hints else ""
            raise ValueError(
                f"Unknown option {key!r} of wrapper {name!r}.{hint} Valid options: "
                f"{', '.join(valid)}. {received(key, value)}"
            )


def with_defaults(method: Callable, defaults: dict[str, Any]) -> Callable:
    """`method` with other default options: what the spec
    `"occlusion(window=(5, 5))"` names. Checked like `check_options`; the same
    method and options give the same function object (one compiled trace).

    Raises:
        ValueError, TypeError: as `check_options`.
    """
    defaults = check_options(method, dict(defaults))
    try:
        key = ("with_defaults", method, freeze(defaults))
    except TypeError:
        key = [method]  # unhashable: not memoized

    def build() -> Callable:
        def configured(model, inputs, indices=None, **options):
            return method(model, inputs, indices, **{**defaults, **options})

        functools.update_wrapper(configured, method)
        return configured

    return memoized(key, build)


def _unknown(name: str, spec: str):
    hints = closest(name, [*METHODS, *WRAPPERS])
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    raise ValueError(
        f"Unknown method {name!r}.{hint} Known: {', '.join(sorted(METHODS))}; "
        f"wrappers: {', '.join(sorted(WRAPPERS))}. {received('spec', spec)}"
    )


@functools.lru_cache(maxsize=256)
def get(spec: str | Callable) -> Callable:
    """A method from its name or spec string; a callable is returned as is.

    Specs nest wrappers and take literal options:
    `"gradcam"`, `"smooth(gradients, repetitions=10, seed=0)"`,
    `"tta(smooth(gradcam), scales=[0.5, 2.0])"`,
    `"occlusion(window=(5, 5), stride=(5, 5))"`. The same spec returns the
    same function object, and so does the same wrapper built inline
    (`smooth(gradients, repetitions=10, seed=0)`), so the engine compiles it
    once.

    Raises:
        ValueError: an unknown name (with suggestions), an unknown option or a
            malformed spec.
        TypeError: `spec` is neither a string nor callable.

    Example:
        >>> get("smooth(gradients, seed=0)") is smooth(gradients, seed=0)
        True
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"`spec` must be a method name, a spec string or a method. "
            f"{received('spec', spec)}"
        )
    return _from_spec(spec)


__all__ = ["check_options", "get", "needs_exposed", "record", "register"]
