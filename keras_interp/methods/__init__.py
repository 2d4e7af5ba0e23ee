"""Attribution methods and the registry that names them.

Every method follows one contract:
`fn(model, inputs, indices=None, *, spatial_axis=(-3, -2), **options)`
`-> (logits, maps)`.
The registry lets callbacks, the CLI and serving name a method, wrappers
included: `get("tta(smooth(gradcam, repetitions=5), scales=[0.5])")`.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import Any

from keras_interp._validation import closest, received
from keras_interp.methods.activation import upsampled_activation
from keras_interp.methods.cams import cam, gradcam, gradcampp, layercam
from keras_interp.methods.gradient import (
    full_gradients,
    gradients,
    input_x_gradient,
    integrated_gradients,
)
from keras_interp.methods.guided import guided_gradients, layer_gradients
from keras_interp.methods.meta import smooth, squaregrad, tta, vargrad
from keras_interp.methods.perturbation import occlusion, rise
from keras_interp.methods.scorecam import scorecam

#: Methods by name.
METHODS: dict[str, Callable] = {
    "cam": cam,
    "gradcam": gradcam,
    "gradcampp": gradcampp,
    "scorecam": scorecam,
    "layercam": layercam,
    "gradients": gradients,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "full_gradients": full_gradients,
    "guided_gradients": guided_gradients,
    "layer_gradients": layer_gradients,
    "occlusion": occlusion,
    "rise": rise,
    "upsampled_activation": upsampled_activation,
}

#: Meta wrappers by name: `wrapper(method, **options) -> method`.
WRAPPERS: dict[str, Callable] = {
    "smooth": smooth,
    "tta": tta,
    "vargrad": vargrad,
    "squaregrad": squaregrad,
}

#: Methods that take an exposed model `[scores, activations...]`: the layer
#: they explain is chosen with `expose(model, arguments=...)`.
EXPOSED: frozenset[str] = frozenset(
    {
        "cam",
        "gradcam",
        "gradcampp",
        "scorecam",
        "layercam",
        "full_gradients",
        "layer_gradients",
        "upsampled_activation",
    }
)


def register(name: str, method: Callable, *, exposed: bool = False) -> Callable:
    """Add a method to the registry (e.g. your own), so specs can name it.

    Args:
        name: the name specs use; must be an identifier not taken.
        method: a function following the method contract.
        exposed: whether it takes an exposed model.

    Returns:
        `method`, so `register` can be used as `register("m", m)`.

    Raises:
        ValueError: a bad or taken name.
        TypeError: `method` is not callable.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be an identifier. {received('name', name)}")
    if name in METHODS or name in WRAPPERS:
        raise ValueError(f"A method named {name!r} exists. {received('name', name)}")
    if not callable(method):
        raise TypeError(f"`method` must be callable. {received('method', method)}")
    METHODS[name] = method
    if exposed:
        global EXPOSED
        EXPOSED = EXPOSED | {name}
    get.cache_clear()
    return method


def needs_exposed(method: Any) -> bool:
    """Whether `method` (a name, spec or function, wrapped or not) explains an
    intermediate layer and so takes an exposed model."""
    function = get(method) if isinstance(method, str) else method
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    return any(function is METHODS[name] for name in EXPOSED if name in METHODS)


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
            return _with_defaults(METHODS[name], kwargs)
        if len(node.args) != 1:
            raise ValueError(
                f"Wrapper {name!r} takes exactly one method. {received('spec', spec)}"
            )
        return WRAPPERS[name](_build(node.args[0], spec), **kwargs)
    raise ValueError(
        "A method spec is a name or wrapper calls, e.g. 'smooth(gradcam)'. "
        f"{received('spec', spec)}"
    )


def _with_defaults(method: Callable, defaults: dict[str, Any]) -> Callable:
    def configured(model, inputs, indices=None, **options):
        return method(model, inputs, indices, **{**defaults, **options})

    functools.update_wrapper(configured, method)
    return configured


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
    same function object, so the engine compiles it once.

    Raises:
        ValueError: an unknown name (with suggestions) or a malformed spec.
        TypeError: `spec` is neither a string nor callable.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"`spec` must be a method name, a spec string or a method. "
            f"{received('spec', spec)}"
        )
    return _from_spec(spec)


__all__ = [
    "EXPOSED",
    "METHODS",
    "WRAPPERS",
    "get",
    "needs_exposed",
    "register",
    *METHODS,
    *WRAPPERS,
]
