"""`render`: optimise a parameterised image to maximise an objective.

One compiled optimisation step (a `tf.function` taking the step number as a
tensor, so it is traced once) is reused for every step: make the images with
the param, transform them with a seed derived from `(seed, step)`, composite
an alpha channel over a random background, map [0, 1] to the model's input
range, run ONE forward pass that returns the logits and every layer the
objective reads, and take an optimiser step on the param's variables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_interp._validation import (
    check_positive_float,
    check_positive_int,
    progress_verbosity,
    received,
    renamed_argument,
)
from keras_interp.engine.tracing import traced_function
from keras_interp.synthesis.context import Context, layer_key
from keras_interp.synthesis.objectives import Objective
from keras_interp.synthesis.param import Param, fourier_image
from keras_interp.synthesis.transforms import (
    as_seed,
    compose,
    fold_seed,
    standard_transforms,
    uniform,
)

Forward = Callable[[tf.Tensor], tuple[Any, dict]]


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """What `render` returns.

    Attributes:
        images: the final images `(B, H, W, C)`, float32 numpy in [0, 1] (alpha
            last if the param has one).
        history: the objective (batch mean) every `history_every` steps,
            evaluated before that step's update.
        history_steps: the steps at which `history` was recorded.
        values: per-image objective values `(B,)` at the last step.
        param: the `Param`, holding the optimised variables.
        objective: the objective maximised.
    """

    images: np.ndarray
    history: list
    history_steps: list
    values: np.ndarray
    param: Param
    objective: Objective


def _is_model_interface(model: Any) -> bool:
    return hasattr(model, "layer_outputs") and hasattr(model, "logits_and_layer")


def make_forward(
    model: Any, layers: Sequence[Any] = (), *, logits: bool = True
) -> Forward:
    """A function `x -> (logits or None, {layer_key(ref): activations})`.

    The model protocol, in order:

    1. A `keras_interp.models.Model` (frozen graphs; anything with
       `layer_outputs(x, names)` and `logits_and_layer(x, name)`): the layer
       references are its layer names. One pass when only layers, or the logits
       and at most one layer, are needed; with the logits and several layers, a
       second pass (`layer_outputs`) gives the others. A `KerasModel` is
       unwrapped to its Keras model.
    2. A Keras model (Keras 3 or tf_keras, functional or Sequential, nested
       backbones included): `inspection.expose(model, arguments=layers,
       outputs=None or [])`, one pass, logits before any softmax.
    3. Any other callable `f(x)` (a concrete function of a frozen graph, a
       subclassed model): it returns a dict `{"logits": ..., name: activations}`
       (layers looked up by `layer_key`), a list `[logits, *activations]`
       whose activations are named by the callable's `layer_names` attribute
       if it has one, else are the requested layers in order, or a single
       tensor (the logits).

    Args:
        model: as above.
        layers: layer references (`inspection.find_layer` forms for Keras).
        logits: whether the logits are needed.

    Returns:
        The forward function (traceable).

    Raises:
        TypeError: `model` is not callable.
    """
    layers = tuple(dict.fromkeys(layers))
    keys = [layer_key(ref) for ref in layers]
    if not layers and not logits:
        return lambda x: (None, {})  # the objective reads only the images
    inner = getattr(model, "keras_model", None)
    if _is_model_interface(model) and inner is not None:
        model = inner
    if _is_model_interface(model):
        return _model_interface_forward(model, keys, logits)
    from keras_interp.inspection import expose, has_graph

    if hasattr(model, "layers") and (layers or has_graph(model)):
        exposed = expose(model, arguments=list(layers), outputs=None if logits else [])

        def keras_forward(x):
            outputs = list(exposed(x, training=False))
            first = outputs.pop(0) if logits else None
            return first, dict(zip(keys, outputs))

        return keras_forward
    if not callable(model):
        raise TypeError(
            "`model` must be a Keras model, a keras_interp Model or a callable "
            f"returning logits and activations. {received('model', model)}"
        )
    return _callable_forward(model, keys)


def _model_interface_forward(model: Any, keys: list[str], logits: bool) -> Forward:
    def forward(x):
        acts = {}
        first = None
        if logits:
            name = keys[0] if keys else model.output_layer_names[0]
            first, act = model.logits_and_layer(x, name)
            if keys:
                acts[keys[0]] = act
        rest = [k for k in keys if k not in acts]
        if rest:
            acts.update(zip(rest, model.layer_outputs(x, rest)))
        return first, acts

    return forward


def _callable_forward(model: Callable, keys: list[str]) -> Forward:
    names = getattr(model, "layer_names", None)

    def forward(x):
        try:
            out = model(x, training=False)
        except TypeError:
            out = model(x)
        if isinstance(out, dict):
            acts = {layer_key(k): v for k, v in out.items() if k != "logits"}
            return out.get("logits"), acts
        if not isinstance(out, (list, tuple)):
            return out, {}
        first, *rest = out
        labels = [layer_key(n) for n in names] if names is not None else keys
        if len(labels) != len(rest):
            raise ValueError(
                f"The model returned {len(rest)} activation(s) after the logits "
                f"but {len(labels)} layer(s) are named ({labels}). Give the "
                "callable a `layer_names` attribute or return a dict. "
                f"{received('model', model)}"
            )
        return first, dict(zip(labels, rest))

    return forward


def _as_transform(transforms: Any) -> Callable:
    if transforms is None:
        return standard_transforms
    if callable(transforms):
        return transforms
    return compose(transforms)


def _input_size(model: Any) -> tuple[int, int] | None:
    if not hasattr(model, "layers") or _is_model_interface(model):
        return None
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        return None
    if len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return None


def render(
    model: Any,
    objective: Objective,
    param: Param | None = None,
    *,
    transforms: Any = None,
    steps: int = 256,
    lr: float = 0.05,
    optimizer: Any = None,
    seed: int = 0,
    input_range: tuple[float, float] | None = None,
    preprocessing: Callable | None = None,
    verbose: str | int = "auto",
    history_every: int = 1,
    jit_compile: bool = False,
    background: Any = None,
    callback: Callable | None = None,
    preprocess: Callable | None = None,
) -> RenderResult:
    """Optimise `param`'s images to maximise `objective` on `model`.

    Each step: `images = param()`; `x = transforms(images, fold_seed(seed,
    step))`; with an alpha channel, `x = rgb * a + background * (1 - a)`;
    `model_input = preprocessing(low + x * (high - low))` (resized to the
    model's input size if it is fixed and differs); the objective reads the
    logits and layers of one forward pass; the loss `-mean_b(value)` is
    minimised by the optimiser. Runs with the same seed are bit-identical.

    Args:
        model: a Keras model, a `keras_interp.models.Model` (frozen graphs) or
            a callable; see `make_forward` for the protocol.
        objective: the `Objective` to maximise.
        param: the image parameterisation. Defaults to `fourier_image((1, H,
            W, 3), seed=seed)` with the model's input size (128 if not fixed).
        transforms: a transform, a list of transforms (composed), `[]` for
            none, or None for lucid's `standard_transforms`.
        steps: optimisation steps.
        lr: the learning rate of the default optimiser, Adam (lucid's 0.05).
        optimizer: a Keras optimiser to use instead.
        seed: seeds the transforms and the alpha background (and the default
            param).
        input_range: `(low, high)` the model expects; None uses the model's
            `input_value_range` if it has one, else (0, 1).
        preprocessing: a function applied after the range map, e.g.
            `keras.applications.mobilenet_v2.preprocess_input` with
            `input_range=(0, 255)`.
        verbose: 0, 1, 2, or `"auto"` (a `keras.utils.Progbar` from 5 steps
            on, the rule of `explain`).
        history_every: record the objective every this many steps.
        jit_compile: compile the step with XLA.
        background: with an alpha param, what shows through: None for uniform
            noise redrawn every step (seeded), or a number or an image
            broadcastable to `(B, H', W', 3)`.
        callback: `callback(step, value, param)` called after each step in
            Python (e.g. to assign a blur schedule's `tf.Variable`); returning
            True stops the optimisation.
        preprocess: deprecated name of `preprocessing` (a DeprecationWarning).

    Returns:
        A `RenderResult` with the images `(B, H, W, C)` in [0, 1] and the
        history.

    Raises:
        ValueError: bad `steps`, `input_range`, `verbose`; a NaN, infinite or
            non-positive `lr`; an objective that does not depend on the param,
            or whose channel or class index is past the width of its layer or
            of the logits.
        TypeError: `objective` is not an `Objective`; `lr` not a number.

    Example:
        >>> from keras_interp.synthesis import channel, pixel_image
        >>> model = keras_interp.testing.models.gap_dense(size=16)
        >>> result = render(model, channel("conv", 0), pixel_image((1, 16, 16, 3)),
        ...                 steps=20, verbose=0)
        >>> result.images.shape
        (1, 16, 16, 3)

    References:
        Olah, Mordvintsev, Schubert, Feature Visualization, Distill 2017;
        lucid `optvis.render.render_vis`.
    """
    if not isinstance(objective, Objective):
        raise TypeError(
            f"`objective` must be an Objective. {received('objective', objective)}"
        )
    steps = check_positive_int(steps, "steps")
    lr = check_positive_float(lr, "lr")
    history_every = check_positive_int(history_every, "history_every")
    show = progress_verbosity(verbose, steps)
    preprocess = renamed_argument(
        preprocessing, preprocess, "preprocessing", "preprocess"
    )
    low, high = _range(model, input_range)
    size = _input_size(model)
    if param is None:
        param = fourier_image((1, *(size or (128, 128)), 3), seed=seed)
    if not isinstance(param, Param):
        raise TypeError(f"`param` must be a Param. {received('param', param)}")
    transform = _as_transform(transforms)
    forward = make_forward(model, objective.layers, logits=objective.needs_logits)
    optimizer = optimizer or keras.optimizers.Adam(lr)
    variables = list(param.variables)
    optimizer.build(variables)
    base = as_seed(seed)

    def step_fn(step):
        step_seed = fold_seed(base, step)
        with tf.GradientTape() as tape:
            images = param()
            x = transform(images, fold_seed(step_seed, 0))
            if param.alpha:
                rgb, alpha = x[..., :-1], x[..., -1:]
                bg = (
                    uniform(fold_seed(step_seed, 1), tf.shape(rgb))
                    if background is None
                    else tf.cast(background, tf.float32)
                )
                x = rgb * alpha + bg * (1 - alpha)
            model_input = low + x * (high - low)
            if preprocess is not None:
                model_input = preprocess(model_input)
            if size is not None and tuple(model_input.shape[1:3]) != size:
                model_input = tf.image.resize(model_input, size)
            logits, acts = forward(model_input)
            context = Context(images, x, acts, logits, step, alpha=param.alpha)
            value = objective(context)
            total = tf.reduce_mean(value)
            loss = -total
        grads = tape.gradient(loss, variables)
        if any(g is None for g in grads):
            raise ValueError(
                f"The objective {objective.name!r} does not depend on the param's "
                f"variables. {received('objective', objective)}"
            )
        optimizer.apply_gradients(zip(grads, variables))
        per_image = tf.broadcast_to(value, [tf.shape(images)[0]])
        return total, per_image

    compiled = traced_function(step_fn, jit_compile=jit_compile, reduce_retracing=True)
    bar = keras.utils.Progbar(steps, verbose=show, stateful_metrics=["objective"])
    history, history_steps, per_image = [], [], None
    for step in range(steps):
        total, per_image = compiled(tf.constant(step, tf.int32))
        if step % history_every == 0 or step == steps - 1:
            history.append(float(total))
            history_steps.append(step)
        stop = callback(step, float(total), param) if callback is not None else None
        if show:
            bar.update(step + 1, values=[("objective", float(total))])
        if stop:
            break
    return RenderResult(
        images=param.numpy(),
        history=history,
        history_steps=history_steps,
        values=np.asarray(per_image, np.float32),
        param=param,
        objective=objective,
    )


def _range(model: Any, input_range: Any) -> tuple[float, float]:
    if input_range is None:
        input_range = getattr(model, "input_value_range", (0.0, 1.0))
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError(
            "`input_range` must be a pair (low, high). "
            f"{received('input_range', input_range)}"
        ) from None
    if not low < high:
        raise ValueError(
            "`input_range` must have low < high. "
            f"{received('input_range', input_range)}"
        )
    return low, high
