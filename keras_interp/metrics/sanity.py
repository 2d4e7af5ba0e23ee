"""Sanity checks: do maps change when the model or the explained class does?"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_interp._validation import check_one_of, received
from keras_interp.engine.cache import cached_variant
from keras_interp.metrics._common import (
    MetricResult,
    check_inputs,
    explain_maps,
    require_method,
    resolve_maps,
)
from keras_interp.metrics.similarity import map_similarity


def _clone(model: Any) -> Any:
    """A copy of `model` with its own variables (nested models copied too),
    made once per model (in the engine's per-model cache) and reset to the
    model's current weights each call, so the engine's compiled steps for it
    are reused (e.g. in a callback)."""
    clone = cached_variant(model, "randomisation clone", lambda: _new_clone(model))
    clone.set_weights(model.get_weights())
    return clone


def _new_clone(model: Any) -> Any:
    """A fresh copy of `model` sharing no variable with it."""
    module = type(model).__module__
    try:
        if module.startswith("tf_keras"):
            import tf_keras

            clone = tf_keras.models.clone_model(model)
        else:
            clone = keras.models.clone_model(model, recursive=True)
    except Exception as error:  # noqa: BLE001 - subclassed models cannot be cloned
        raise TypeError(
            "`model_randomization` needs a functional or Sequential model it can "
            f"clone (the user's model is never modified): {error}. "
            f"{received('model', model)}"
        ) from error
    if {id(v) for v in clone.weights} & {id(v) for v in model.weights}:
        raise TypeError(
            "Cloning `model` shared variables with it, so randomising the clone "
            f"would change the model. {received('model', model)}"
        )
    return clone


def weighted_layers(model: Any) -> list[Any]:
    """Layers with trainable weights, nested models flattened, input to output."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            found.extend(weighted_layers(layer))
        elif layer.trainable_weights:
            found.append(layer)
    return found


def reinitialise(layer: Any, seed: int) -> None:
    """Redraw `layer`'s trainable weights from its own initializers (seeded).

    A weight named `w` is drawn from `layer.w_initializer`; one without such an
    attribute from a normal of the weight's own mean and standard deviation.
    """
    for j, variable in enumerate(layer.trainable_weights):
        name = variable.name.split("/")[-1].split(":")[0]
        shape = tuple(variable.shape)
        initializer = getattr(layer, f"{name}_initializer", None)
        if initializer is None:
            value = np.asarray(variable.numpy())
            rng = np.random.default_rng(seed + j)
            variable.assign(rng.normal(value.mean(), value.std(), shape))
            continue
        initializer = keras.initializers.get(initializer)
        config = initializer.get_config()
        if "seed" in config:
            config["seed"] = seed + j
            initializer = type(initializer).from_config(config)
        variable.assign(keras.ops.convert_to_numpy(initializer(shape, "float32")))


def model_randomization(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    mode: str = "cascading",
    similarity: str = "spearman",
    absolute: bool = True,
) -> MetricResult:
    """Model parameter randomisation test: maps should change with the weights.

    On a clone of `model` (the model itself is never touched), layers with
    trainable weights are re-initialised with their own initializers, from the
    output back to the input: `"cascading"` keeps earlier randomisations,
    `"independent"` restores the trained weights before each layer. After each
    stage the maps are recomputed and compared with the trained model's. The
    value is the mean similarity over the stages: low means the method
    depends on the weights (it passes), near 1 that it does not (an edge
    detector, the input itself).

    Args:
        model: a functional or Sequential model (Keras 3 or tf_keras).
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method (required: maps are recomputed).
        maps: the trained model's maps `(B, H, W)`, if already computed.
        batch_size: images per step.
        seed: seed of the re-initialisation.
        mode: `"cascading"` or `"independent"`.
        similarity: `"spearman"`, `"ssim"` or `"hog"` (see `map_similarity`).
        absolute: compare magnitudes (signs ignored).

    Returns:
        `MetricResult` with the mean similarity per image, `curves` `(B, L)`
        (similarity after each stage) and `info["layers"]` (names, in order).

    Raises:
        ValueError: no method, bad images, labels or options.
        TypeError: a model that cannot be cloned.

    References:
        Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018.
        arXiv:1810.03292.
    """
    require_method(method, "model_randomization")
    check_one_of(mode, ("cascading", "independent"), "mode")
    check_one_of(similarity, ("spearman", "ssim", "hog"), "similarity")
    x, y = check_inputs(model, x, y)
    original = resolve_maps(model, x, y, method, maps, batch_size)
    clone = _clone(model)
    layers = weighted_layers(clone)[::-1]
    trained = [v.numpy() for v in clone.weights]
    curves = []
    for stage, layer in enumerate(layers):
        if mode == "independent" and stage:
            for variable, value in zip(clone.weights, trained):
                variable.assign(value)
        reinitialise(layer, seed + 1000 * stage)
        randomised = explain_maps(method, clone, x, y, batch_size)
        curves.append(
            map_similarity(original, randomised, similarity, absolute=absolute)
        )
    curves = np.stack(curves, axis=1)
    return MetricResult(
        f"model_randomization_{mode}",
        curves.mean(axis=1),
        curves,
        np.arange(1, len(layers) + 1),
        {"layers": [layer.name for layer in layers], "similarity": similarity},
    )


def random_logit(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    method: Any = None,
    maps: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    similarity: str = "ssim",
    absolute: bool = False,
) -> MetricResult:
    """Random logit test: the map of another class should differ.

    For each image a different class is drawn (seeded, uniformly among the
    others); the value is the similarity between the maps of the label and
    of that class. Lower is better.

    Args:
        model: the classifier.
        x: images `(B, H, W, C)`.
        y: class indices `(B,)`, or `None` for the predicted classes.
        method: the attribution method (required).
        maps: the label's maps `(B, H, W)`, if already computed.
        batch_size: images per step.
        seed: seed of the random classes.
        similarity: `"ssim"` (as xplique), `"spearman"` or `"hog"`.
        absolute: compare magnitudes.

    Returns:
        `MetricResult` with one similarity per image; `info["classes"]`.

    Raises:
        ValueError: no method, fewer than 2 classes, bad inputs.

    References:
        Sixt, Granz and Landgraf, When Explanations Lie: Why Many Modified BP
        Attributions Fail, ICML 2020. arXiv:1912.09818.
    """
    from keras_interp.methods._base import forward
    from keras_interp.metrics._common import logits_model

    require_method(method, "random_logit")
    check_one_of(similarity, ("spearman", "ssim", "hog"), "similarity")
    x, y = check_inputs(model, x, y)
    units = int(np.asarray(forward(logits_model(model), x[:1])[0]).shape[-1])
    if units < 2:
        raise ValueError(f"`random_logit` needs 2 classes or more. {received('y', y)}")
    original = resolve_maps(model, x, y, method, maps, batch_size)
    other = (y + np.random.default_rng(seed).integers(1, units, len(y))) % units
    others = explain_maps(method, model, x, other.astype(np.int32), batch_size)
    values = map_similarity(original, others, similarity, absolute=absolute)
    return MetricResult("random_logit", values, info={"classes": other})
