"""SavedModels and TF-Hub models as frozen-graph models.

A SavedModel's function (a signature, or the `__call__` TF-Hub models use) is
frozen (variables become constants, nested calls are inlined) and loaded as a
`FrozenGraphModel`, so every op inside it is a layer: activations for concept
vectors, `exposed(layer)` for Grad-CAM, `exposed()` for the gradient methods.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import tensorflow as tf

from keras_interp._validation import received
from keras_interp.models.frozen import FrozenGraphModel


def freeze_function(function: Any) -> tuple[tf.compat.v1.GraphDef, list, Any]:
    """Freeze a concrete function (variables become constants).

    Uses TensorFlow's `convert_variables_to_constants_v2` (not in the public
    API, but the tool TF's own converters use), which also inlines the nested
    function calls, so every op gets a plain node name such as
    `"StatefulPartitionedCall/model/conv/Relu"`.

    Args:
        function: a `tf.function` concrete function, e.g. a SavedModel
            signature.

    Returns:
        `(graph_def, inputs, outputs)`: the frozen graph, the names (`name:0`)
        of the non-resource input tensors in order, and the structure of
        `function.structured_outputs` with each tensor replaced by its name.

    Example:
        >>> from keras_interp.testing.models import gap_dense
        >>> net = gap_dense(size=32)
        >>> fn = tf.function(lambda x: net(x)).get_concrete_function(
        ...     tf.TensorSpec([None, 32, 32, 3], tf.float32, name="input"))
        >>> graph_def, inputs, outputs = freeze_function(fn)
        >>> inputs, outputs
        (['input:0'], 'Identity:0')
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(function)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    # The frozen function may lose the output structure (a signature's dict),
    # and a function differentiated before has the intermediates its gradient
    # needs as extra outputs, after its own: the first outputs follow the
    # flattened structure of the original function.
    structure = function.structured_outputs
    names = [t.name for t in frozen.outputs][: len(tf.nest.flatten(structure))]
    outputs = tf.nest.pack_sequence_as(structure, names)
    return frozen.graph.as_graph_def(), inputs, outputs


def load_saved_model(
    handle: Any,
    *,
    signature: str | None = None,
    output_key: str | int | None = None,
    input_value_range: tuple[float, float] = (0, 1),
    output_names: list[str] | None = None,
    image_size: int | None = None,
) -> FrozenGraphModel:
    """Load a SavedModel or TF-Hub model as a differentiable `FrozenGraphModel`.

    The function used is `signature` if given, else the object's `__call__`
    (TF-Hub's convention; with `training=False` when it has that argument),
    else the `serving_default` signature, else the only signature. Its image
    input (the float rank-4 one) becomes the model input and the output named
    by `output_key` the logits.

    Args:
        handle: a SavedModel directory, a TF-Hub handle with `://` (resolved by
            `tensorflow_hub.load`, which may download), an object returned by
            `tf.saved_model.load` / `hub.load`, a `hub.KerasLayer`, a
            `tf.function` or a concrete function.
        signature: a key of the object's `signatures`.
        output_key: which output holds the logits when the function returns a
            dict (its key) or a list (its index). Defaults to the only output.
        input_value_range: how a [0, 1] image is scaled for the model.
        output_names: nodes offered as layers. Defaults to every node computed
            from the input.
        image_size: the square side images are resized to. Defaults to the
            input's declared size, or 224.

    Returns:
        A `FrozenGraphModel`; `.outputs` maps each output key to its node.

    Raises:
        FileNotFoundError: no such directory.
        ValueError: a file instead of a directory (a `.keras`/`.h5` file gets a
            hint), a directory without `saved_model.pb`, a SavedModel that
            TensorFlow cannot load (corrupt or truncated `saved_model.pb`,
            missing variables: TensorFlow's error is chained and the message
            names the path); unknown signature or output key, no usable function, or no
            float image input; the message lists what exists.
        TypeError: `handle` of another type (a Keras model: use `KerasModel`).

    Example:
        >>> import tempfile
        >>> from keras_interp.testing.models import gap_dense
        >>> exported_model = tempfile.mkdtemp()
        >>> gap_dense(size=16).export(exported_model, verbose=False)
        >>> model = load_saved_model(exported_model)
        >>> images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3))
        >>> logits, maps = keras_interp.methods.gradients(model.exposed(), images)
        >>> layer = next(n for n in model.output_layer_names if n.endswith("/Relu"))
        >>> layer  # doctest: +ELLIPSIS
        'StatefulPartitionedCall/.../Relu'
        >>> logits, cams = keras_interp.methods.gradcam(model.exposed(layer), images)
        >>> cams.shape
        TensorShape([2, 16, 16, 3])

    References:
        TensorFlow, "Using the SavedModel format" and TF-Hub's reusable
        SavedModel interface (`__call__`, `training`), tensorflow.org guides.
    """
    loaded = _resolve(handle)  # keeps the variables alive while freezing
    graph_def, inputs, outputs = freeze_function(_function(loaded, signature))
    del loaded
    nodes = {node.name: node for node in graph_def.node}
    images = [name for name in inputs if _is_image(nodes[name.split(":")[0]])]
    if len(images) != 1 and len(inputs) != 1:
        raise ValueError(
            "`handle` must be a model with one float image input (batch, height, "
            f"width, channels); its function takes {inputs}. "
            f"{received('handle', handle)}"
        )
    input_name = (images or inputs)[0].split(":")[0]
    flat = outputs if isinstance(outputs, (dict, list, tuple)) else {0: outputs}
    keys = list(flat) if isinstance(flat, dict) else list(range(len(flat)))
    if output_key is None and len(keys) == 1:
        output_key = keys[0]
    if output_key not in keys:
        raise ValueError(
            f"`output_key` must be one of {keys} (the outputs of the function). "
            f"{received('output_key', output_key)}"
        )
    node_names = {key: flat[key].split(":")[0] for key in keys}
    model = FrozenGraphModel(
        graph_def,
        input_name=input_name,
        output_names=output_names,
        input_value_range=input_value_range,
        logits_name=node_names[output_key],
        image_size=image_size,
    )
    if isinstance(handle, (str, os.PathLike)):
        model.model_path = handle
    model.outputs = node_names
    return model


def _resolve(handle: Any) -> Any:
    """The loaded object (or function) behind `handle`."""
    if isinstance(handle, (str, os.PathLike)):
        text = os.fspath(handle)
        if "://" in text:
            import tensorflow_hub as hub

            return hub.load(text)
        path = pathlib.Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                "`handle` must be an existing SavedModel directory or a TF-Hub "
                f"handle with '://'. {received('handle', text)}"
            )
        if not path.is_dir():
            hint = (
                " A Keras file: load it with `keras.saving.load_model` and wrap "
                "it in `KerasModel`."
                if path.suffix in (".keras", ".h5", ".hdf5")
                else ""
            )
            raise ValueError(
                f"`handle` must be a SavedModel directory, not a file.{hint} "
                f"{received('handle', text)}"
            )
        return _load_directory(path, text)
    if hasattr(handle, "resolved_object"):  # hub.KerasLayer
        return handle.resolved_object
    if hasattr(handle, "layers") and not hasattr(handle, "signatures"):
        raise TypeError(
            "`handle` is a Keras model: wrap it in `KerasModel` instead. "
            f"{received('handle', handle)}"
        )
    return handle


def _load_directory(path: pathlib.Path, text: str) -> Any:
    """`tf.saved_model.load(path)`, its errors wrapped in a ValueError naming it."""
    if (
        not (path / "saved_model.pb").exists()
        and not (path / "saved_model.pbtxt").exists()
    ):
        raise ValueError(
            f"`handle` must be a SavedModel directory, but {text!r} holds no "
            f"saved_model.pb (its files: {sorted(p.name for p in path.iterdir())[:8]})"
            f". {received('handle', text)}"
        )
    try:
        return tf.saved_model.load(str(path))
    except Exception as error:  # noqa: BLE001 (TF's loader raises many types)
        raise ValueError(
            f"Could not load the SavedModel at {text!r} "
            f"({type(error).__name__}: {str(error).strip()[:300]}). "
            f"{received('handle', text)}"
        ) from error


def _function(obj: Any, signature: str | None) -> Any:
    """The concrete function to freeze."""
    if isinstance(obj, tf.types.experimental.ConcreteFunction):
        return obj
    if isinstance(obj, tf.types.experimental.GenericFunction):
        return _concrete(obj)
    signatures = dict(getattr(obj, "signatures", None) or {})
    if signature is not None:
        if signature not in signatures:
            raise ValueError(
                f"`signature` must be one of {sorted(signatures)}. "
                f"{received('signature', signature)}"
            )
        return signatures[signature]
    call = getattr(obj, "__call__", None)  # noqa: B004 (a tf.function, not callable())
    if isinstance(call, tf.types.experimental.GenericFunction):
        return _concrete(call)
    if "serving_default" in signatures:
        return signatures["serving_default"]
    if len(signatures) == 1:
        return next(iter(signatures.values()))
    raise ValueError(
        "`handle` has no `__call__` function and no single signature to use; "
        f"pass `signature=` (one of {sorted(signatures)}). {received('handle', obj)}"
    )


def _concrete(function: Any) -> Any:
    """A concrete function of `function` taking a float image batch, preferring
    the trace without `training=True`."""
    candidates = list(getattr(function, "concrete_functions", ()) or ())
    ranked = []
    for candidate in candidates:
        args, kwargs = candidate.structured_input_signature
        flat = [*args, *kwargs.values()]
        if flat and _is_image_spec(flat[0]):
            ranked.append((any(value is True for value in flat[1:]), candidate))
    if ranked:
        return min(ranked, key=lambda pair: pair[0])[1]
    try:
        return function.get_concrete_function()
    except (TypeError, ValueError):
        return function.get_concrete_function(
            tf.TensorSpec([None, None, None, 3], tf.float32)
        )


def _is_image_spec(spec: Any) -> bool:
    return (
        isinstance(spec, tf.TensorSpec)
        and spec.dtype.is_floating
        and spec.shape.rank == 4
    )


def _is_image(node: Any) -> bool:
    shape = node.attr["shape"].shape if "shape" in node.attr else None
    dtype = tf.as_dtype(node.attr["dtype"].type) if "dtype" in node.attr else None
    rank_four = shape is None or shape.unknown_rank or len(shape.dim) == 4
    return bool(dtype is not None and dtype.is_floating and rank_four)
