"""Run a model in a lower-precision compute dtype: `explain(..., compute_dtype=)`.

The model is cloned (`keras.models.clone_model`, nested models included) with
every layer under a `keras.DTypePolicy` of the requested dtype, and its
weights are copied; the copy is cached per (model, dtype) in the engine's
one per-model cache (`cache.cached_variant`), so it is built once and dropped
with the model, and the model's current weights are copied into it at every
call (a model that trained since, e.g. under a training callback, is never
explained with stale weights). The user's model is never changed. Maps and
logits come back float32 (the engine casts every output).
"""

from __future__ import annotations

from typing import Any

import keras

from keras_interp._validation import received

#: The accepted `compute_dtype` values: a mixed policy keeps float32 variables
#: and computes in 16 bits; a plain one stores the variables in 16 bits too.
COMPUTE_DTYPES = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def check_compute_dtype(value: Any) -> str | None:
    """`None` or one of `COMPUTE_DTYPES`.

    Raises:
        ValueError: anything else, naming `compute_dtype`.

    Example:
        >>> check_compute_dtype("mixed_bfloat16")
        'mixed_bfloat16'
    """
    if value is None or (isinstance(value, str) and value in COMPUTE_DTYPES):
        return value
    raise ValueError(
        f"`compute_dtype` must be None or one of {', '.join(map(repr, COMPUTE_DTYPES))}"
        f". {received('compute_dtype', value)}"
    )


def with_compute_dtype(model: Any, compute_dtype: str | None) -> Any:
    """`model`, or its cached copy computing in `compute_dtype`.

    Args:
        model: a Keras 3 functional or Sequential model (nested models
            allowed), not yet exposed.
        compute_dtype: one of `COMPUTE_DTYPES`, or `None` (the model itself).

    Returns:
        The model, or a clone with every layer under
        `keras.DTypePolicy(compute_dtype)` and the same weights.

    Raises:
        ValueError: a bad `compute_dtype`, or a model that cannot be cloned
            (an exposed model, a subclassed model, a tf_keras model or a
            callable).

    Example:
        >>> model = gap_dense()
        >>> half = with_compute_dtype(model, "mixed_bfloat16")
        >>> half.layers[-1].compute_dtype, half is with_compute_dtype(
        ...     model, "mixed_bfloat16")
        ('bfloat16', True)
    """
    from keras_interp.engine.cache import cached_variant
    from keras_interp.inspection.expose import is_exposed
    from keras_interp.inspection.graph import has_graph

    compute_dtype = check_compute_dtype(compute_dtype)
    if compute_dtype is None:
        return model
    if is_exposed(model) or not (isinstance(model, keras.Model) and has_graph(model)):
        raise ValueError(
            "`compute_dtype` needs a plain Keras functional or Sequential model "
            "(methods that take an exposed model expose the copy themselves); "
            "for an exposed, subclassed or tf_keras model, build the model under "
            "`keras.mixed_precision.set_dtype_policy(...)` instead. "
            f"{received('model', getattr(model, 'name', model))} with "
            f"compute_dtype={compute_dtype!r}"
        )
    clone = cached_variant(
        model, ("compute_dtype", compute_dtype), lambda: _clone(model, compute_dtype)
    )
    _copy_weights(model, clone)
    return clone


def _copy_weights(model: Any, clone: Any) -> None:
    """Assign `model`'s current weights to `clone` (cast to its dtypes)."""
    for source, target in zip(model.weights, clone.weights, strict=True):
        target.assign(keras.ops.cast(source.value, target.dtype))


def _clone(model: Any, compute_dtype: str) -> Any:
    """A copy of `model` with every layer under the policy, weights copied."""
    policy = keras.DTypePolicy(compute_dtype)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
