"""`export()`: a SavedModel that TF Serving runs, with explain signatures.

The exported directory replaces the plain model (its `serving_default` is
the model's own predictions) and adds the explanations: float images or
encoded image bytes in, the top-k classes, their logits and probabilities and
one map per method out. Everything is TensorFlow graph ops, so the directory
loads with `tf.saved_model.load` or TF Serving without keras_interp.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from keras_interp import methods as registry
from keras_interp._validation import (
    check_callable,
    check_one_of,
    check_positive_int,
    received,
)
from keras_interp.engine import compiled_function
from keras_interp.serving import preprocessing as prep
from keras_interp.serving._graph import (
    SCORES,
    gathered_from,
    overlay_png,
    read_head,
    reusable_scores,
)

#: Signature names and what they take.
SIGNATURES = {
    "serving_default": "images -> predictions (the model's own outputs)",
    "explain": "images -> logits, probabilities, classes, maps_<method>",
    "explain_classes": "images, classes -> the outputs of explain",
    "explain_images": "image_bytes -> the outputs of explain (+ overlay_png_bytes)",
}


def output_name(method: str | Callable) -> str:
    """The output name of a method's maps: `"maps_"` + its sanitised name.

    The spec (or a function's `__name__`) is lower-cased, every run of
    characters other than `a-z` and `0-9` becomes one `_`, and leading and
    trailing `_` are dropped: `"smooth(gradients)"` -> `"maps_smooth_gradients"`,
    `"occlusion(window=(4, 4))"` -> `"maps_occlusion_window_4_4"`.

    Args:
        method: a registry spec or a method function.

    Returns:
        The output name.

    Example:
        >>> output_name("tta(smooth(gradcam), scales=[0.5])")
        'maps_tta_smooth_gradcam_scales_0_5'
    """
    text = method if isinstance(method, str) else getattr(method, "__name__", "")
    cleaned = re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")
    if not cleaned:
        raise ValueError(
            f"Cannot name the maps of this method. {received('method', method)}"
        )
    return f"maps_{cleaned}"


def export(
    model: Any,
    path: str,
    *,
    methods: Sequence[str | Callable] = ("gradcam",),
    image_size: int | Sequence[int] | None = None,
    preprocessing: str | tuple[float, float] | None = None,
    top_k: int = 1,
    overlay: bool = False,
    include_probabilities: bool = True,
    resize_mode: str = "crop",
    postprocessing: Callable | str | None = None,
    **method_options: Any,
) -> dict[str, dict[str, dict[str, tuple]]]:
    """Write `model` and its explainers as a SavedModel for TF Serving.

    Signatures (inputs -> named outputs; `k = top_k`, `L` the classes asked):

    - `serving_default`: `images` float `(B, H, W, C)` -> `predictions`, the
      model's own outputs, unchanged.
    - `explain`: `images` -> `classes` int32 `(B, k)` (the top-k logits),
      `logits` `(B, k)` (the scores the methods explain: the pre-softmax
      logits of `keras_interp.expose`), `probabilities` `(B, k)` (the head's
      softmax/sigmoid of the logits; a softmax when the model outputs logits)
      and one `maps_<method>` `(B, H, W, k)` per method (see `output_name`):
      `keras_interp.explain(method, prepare(model, method), images, classes,
      postprocessing=postprocessing)`, maps resized to the images.
    - `explain_classes`: `images` and `classes` int32 `(B, L)` -> the same
      for the given classes (a signature's inputs are all required in TF
      Serving, hence two signatures). It costs one forward pass: the logits
      and probabilities come from the logits the first method whose model
      gives the head's logits computed anyway (checked at export on a probe
      batch; e.g. Grad-CAM's exposed model), else from one more pass.
    - `explain_images`: `image_bytes` string `(B,)` (JPEG, PNG, BMP, GIF) ->
      the outputs of `explain`; decoding, `resize_mode` to `image_size` and
      the `preprocessing` value range run in the graph
      (`preprocessing.prepare_images`). With `overlay=True` also
      `overlay_png_bytes` `(B,)`: the first method's map of the first class,
      min-max normalised, coloured and blended over the image, PNG-encoded.

    Method options are given once: each option goes to every method that
    takes it (`batch_size`, default 32 as in `explain`, bounds the images per
    forward pass of the chunking methods). Seeded methods (`rise`,
    `smooth(..., seed=0)`) give the same numbers as in-process; `smooth`
    without a seed draws fresh noise per request.

    Args:
        model: a Keras 3 or tf_keras classifier with one output `(B, K)`.
        path: the SavedModel directory to write.
        methods: registry names or specs (`"smooth(gradients, seed=0)"`) or
            method functions.
        image_size: `(height, width)` (or an int) of the model input; defaults
            to the model's input shape.
        preprocessing: the value range images in [0, 1] are mapped to in
            `explain_images`: `None` ([0, 1]), `"tf"`, `"torch"`, `"caffe"` or
            `(low, high)` (see `preprocessing.scale_values`).
        top_k: how many top classes `explain` and `explain_images` explain.
        overlay: add `overlay_png_bytes` to `explain_images`.
        include_probabilities: add the `probabilities` output.
        resize_mode: `"crop"`, `"stretch"` (as `images.load_image`) or
            `"cavlib"` (as `images.crop_to_square_and_resize`).
        postprocessing: `fn(maps, axis)` applied to every method's maps as in
            `explain`, `"natural"` for each method's natural one (as the
            shortcuts), or `None` (raw maps).
        **method_options: options forwarded to the methods that take them.

    Returns:
        `{signature: {"inputs": {name: (shape, dtype)}, "outputs": {...}}}`,
        printable with `format_signatures`.

    Raises:
        ValueError: a bad option, an unknown method, two methods with one
            output name, an option no method takes, or a model that is not a
            single-output classifier.
        TypeError: a bad option type.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> signatures = export(gap_dense(), folder + "/1", methods=["gradcam"])
        >>> sorted(signatures["explain"]["outputs"])
        ['classes', 'logits', 'maps_gradcam', 'probabilities']

    References:
        TensorFlow Serving, "SignatureDefs in SavedModel for TensorFlow
        Serving", https://www.tensorflow.org/tfx/serving/signature_defs.
    """
    top_k = check_positive_int(top_k, "top_k")
    preprocessing = prep.check_value_range(preprocessing)
    check_one_of(resize_mode, prep.RESIZE_MODES, "resize_mode")
    flags = {"overlay": overlay, "include_probabilities": include_probabilities}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be a bool. {received(flag, value)}")
    size, channels = _input_size(model, image_size)
    head = read_head(model)
    if top_k > head.classes:
        raise ValueError(
            f"`top_k` must be at most the model's {head.classes} classes. "
            f"{received('top_k', top_k)}"
        )
    steps = _steps(model, methods, postprocessing, method_options)

    image_spec = tf.TensorSpec((None, *size, channels), tf.float32, name="images")
    class_spec = tf.TensorSpec((None, None), tf.int32, name="classes")
    bytes_spec = tf.TensorSpec((None,), tf.string, name="image_bytes")

    def explain_core(images, classes) -> dict:
        outputs = {}
        for index, (name, step, _) in enumerate(steps):
            logits, outputs[name] = step(images, classes)
            scores = gathered_from(logits, classes, head.classes)
            if scores is not None:  # the method's full logits, for reuse
                outputs[f"{SCORES}{index}"] = scores
        return outputs

    # Traced once and called by every signature, so each method traces once.
    core = tf.function(
        explain_core, input_signature=[image_spec, class_spec], autograph=False
    )
    reused = reusable_scores(core, head, size, channels)

    def finish(images, classes, logits_all, maps) -> dict:
        outputs = {
            "classes": classes,
            "logits": tf.gather(logits_all, classes, batch_dims=1),
        }
        if include_probabilities:
            probabilities = head.probabilities(images, logits_all)
            outputs["probabilities"] = tf.gather(probabilities, classes, batch_dims=1)
        outputs.update((k, v) for k, v in maps.items() if not k.startswith(SCORES))
        return outputs

    def explain_top(images: tf.Tensor) -> dict:
        logits_all = head.logits(images)
        classes = tf.math.top_k(logits_all, k=top_k).indices
        outputs = finish(images, classes, logits_all, core(images, classes))
        return {
            key: tf.ensure_shape(
                value, (None, top_k) if value.shape.rank == 2 else (None, *size, top_k)
            )
            for key, value in outputs.items()
        }

    def serve(images):
        return {"predictions": tf.cast(model(images, training=False), tf.float32)}

    def explain(images):
        return explain_top(images)

    def explain_classes(images, classes):
        maps = core(images, classes)
        # One forward pass: the logits a method computed, when they are the
        # head's (checked on a probe batch), else the head's own pass.
        logits_all = maps[reused] if reused else head.logits(images)
        return finish(images, classes, logits_all, maps)

    def explain_images(image_bytes):
        images, pixels = prep.prepare_images(
            image_bytes, size, mode=resize_mode, preprocessing=preprocessing
        )
        outputs = explain_top(images)
        if overlay:
            outputs["overlay_png_bytes"] = overlay_png(pixels, outputs[steps[0][0]])
        return outputs

    module = tf.Module(name="keras_interp_explainer")
    functions = {
        "serving_default": (serve, [image_spec]),
        "explain": (explain, [image_spec]),
        "explain_classes": (explain_classes, [image_spec, class_spec]),
    }
    if channels == 3:
        functions["explain_images"] = (explain_images, [bytes_spec])
    signatures = {}
    for name, (function, specs) in functions.items():
        traced = tf.function(function, input_signature=specs, autograph=False)
        # Not set on the module: only the signatures are saved (saving the
        # functions as attributes too re-traces them).
        signatures[name] = traced.get_concrete_function()
    # The variables the graphs capture (tf.Variables, for Keras 3 the ones
    # behind its variables), tracked so that the TF1 loader of
    # `saved_model_cli run` and TF Serving can restore them.
    module.model_variables = _variables(signatures.values())
    tf.saved_model.save(module, str(path), signatures=signatures)
    return {name: _describe(fn) for name, fn in signatures.items()}


def format_signatures(signatures: dict[str, dict[str, dict[str, tuple]]]) -> str:
    """The signatures `export` returns, one line per input and output."""
    lines = []
    for name, parts in signatures.items():
        lines.append(f"signature {name!r}:")
        for kind in ("inputs", "outputs"):
            for key, (shape, dtype) in parts[kind].items():
                shown = "(" + ", ".join("None" if d is None else str(d) for d in shape)
                shown += ",)" if len(shape) == 1 else ")"
                lines.append(f"  {kind[:-1]:6} {key:28} {dtype:8} {shown}")
    return "\n".join(lines)


def _describe(function: Any) -> dict[str, dict[str, tuple]]:
    def spec(value: Any) -> tuple:
        return tuple(value.shape.as_list()), value.dtype.name

    inputs = {s.name: spec(s) for s in function.structured_input_signature[0]}
    outputs = {k: spec(v) for k, v in sorted(function.structured_outputs.items())}
    return {"inputs": inputs, "outputs": outputs}


def _input_size(model: Any, image_size: Any) -> tuple[tuple[int, int], int]:
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4:
        raise ValueError(
            "`model` must take one image input (B, H, W, C). "
            f"{received('model.input_shape', shape)}"
        )
    channels = shape[3]
    if channels is None:
        raise ValueError(
            f"`model` must have a known channel count. {received('model', shape)}"
        )
    if image_size is None:
        if shape[1] is None or shape[2] is None:
            raise ValueError(
                "`image_size` is required for a model without a fixed input size. "
                f"{received('image_size', image_size)}"
            )
        return (int(shape[1]), int(shape[2])), int(channels)
    size = prep._check_size(image_size)
    fixed = tuple(int(s) for s in shape[1:3] if s is not None)
    if len(fixed) == 2 and fixed != size:
        raise ValueError(
            f"`image_size` must match the model's input size {fixed}. "
            f"{received('image_size', image_size)}"
        )
    return size, int(channels)


def _accepts(method: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


def _steps(model, methods, postprocessing, options) -> list[tuple[str, Any, Any]]:
    """`(output name, compiled step, prepared model)` per method."""
    from keras_interp.shortcuts import NATURAL_POSTPROCESSING, prepare

    if isinstance(methods, (str, bytes)) or callable(methods):
        methods = [methods]
    methods = list(methods)
    if not methods:
        raise ValueError(f"`methods` must not be empty. {received('methods', methods)}")
    if postprocessing is not None and postprocessing != "natural":
        check_callable(postprocessing, "postprocessing")
    options = dict(options)
    options.setdefault("batch_size", 32)
    check_positive_int(options["batch_size"], "batch_size")
    used: set[str] = set()
    steps, names = [], set()
    for spec in methods:
        function = registry.get(spec)
        name = output_name(spec)
        if name in names:
            raise ValueError(
                f"Two methods have the output name {name!r}. "
                f"{received('methods', methods)}"
            )
        names.add(name)
        kwargs = {k: v for k, v in options.items() if _accepts(function, k)}
        used |= kwargs.keys()
        post = postprocessing
        if post == "natural":
            base = function
            while hasattr(base, "__wrapped__"):
                base = base.__wrapped__
            post = next(
                (
                    NATURAL_POSTPROCESSING[n]
                    for n, m in registry.METHODS.items()
                    if m is base and n in NATURAL_POSTPROCESSING
                ),
                None,
            )
        prepared = prepare(model, spec)
        compiled = compiled_function(
            function, prepared, postprocessing=post, resizing=True, **kwargs
        )
        # The engine's own step, traced here without autograph (as Keras'
        # ExportArchive does): methods use explicit graph loops, and converting
        # Keras' layer code with autograph costs seconds per method.
        step = compiled.python_function
        steps.append((name, step, prepared))
    unused = sorted(set(options) - used - {"batch_size"})
    if unused:
        raise ValueError(
            f"No method in {methods} takes the option(s) {', '.join(unused)}. "
            f"{received('method_options', {k: options[k] for k in unused})}"
        )
    return steps


def _variables(functions: Any) -> list[Any]:
    """Every variable the concrete `functions` capture, each once."""
    seen, result = set(), []
    for function in functions:
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                result.append(variable)
    return result


__all__ = ["SIGNATURES", "export", "format_signatures", "output_name"]
