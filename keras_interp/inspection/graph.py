"""Walk the layer graph of Keras 3 and tf_keras models, nested models included.

This is the ONLY module of keras_interp that touches Keras internals (the node
structure of functional models: `_nodes_by_depth`, `node.arguments`,
`Sequential._functional`, and tf_keras's `node.call_args`). Everything else asks
it. The rest of the package sees three ideas:

- `iter_layers(model)`: every layer at every depth with its path `"outer/inner"`;
- `find_layer(model, ref)`: one layer from a name, path, tuple, index or object;
- `run_graph(model, inputs, taps)`: execute the model node by node on real
  tensors, recursing into nested models that hold a tapped layer, and return
  the tapped tensors. Because layers are called on real tensors (never on
  symbolic ones), the user's model gains no nodes and its layer names never
  clash, however deep the tapped layer sits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from keras_interp._validation import closest, received

#: Activations stripped from an exposed logits layer.
SQUASHING_ACTIVATIONS = ("softmax", "sigmoid")


def is_tf_keras(obj: Any) -> bool:
    """Whether `obj` (a layer or model, or a weak proxy of one) comes from
    `tf_keras` (Keras 2)."""
    return any(c.__module__.startswith("tf_keras") for c in obj.__class__.__mro__)


def _graph(model: Any) -> Any | None:
    """The functional graph behind `model`, or None (subclassed, unbuilt)."""
    if is_tf_keras(model):
        return model if getattr(model, "_is_graph_network", False) else None
    functional = getattr(model, "_functional", None)
    if functional is not None:  # a built Keras 3 Sequential
        return functional
    return model if hasattr(model, "_nodes_by_depth") else None


def has_graph(model: Any) -> bool:
    """Whether `model` is a functional or Sequential model with a layer graph."""
    return _graph(model) is not None


def is_container(layer: Any) -> bool:
    """Whether `layer` holds sub-layers that `iter_layers` should descend into."""
    return hasattr(layer, "layers") and (
        hasattr(layer, "_nodes_by_depth") or hasattr(layer, "_functional")
    )


def iter_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield `(path, layer)` for every layer of `model`, depth first, in order.

    Nested models are yielded themselves, then their layers with paths
    `"outer/inner"`. Input layers are skipped.
    """
    for layer in getattr(model, "layers", ()):
        if type(layer).__name__ == "InputLayer":
            continue
        path = f"{prefix}{layer.name}"
        yield path, layer
        if is_container(layer):
            yield from iter_layers(layer, prefix=f"{path}/")


def _children(model: Any) -> list[Any]:
    return [
        layer
        for layer in getattr(model, "layers", ())
        if type(layer).__name__ != "InputLayer"
    ]


def _not_found(model: Any, ref: Any, arg: str = "ref") -> ValueError:
    paths = [path for path, _ in iter_layers(model)]
    names = paths + [path.rsplit("/", 1)[-1] for path in paths]
    hints = closest(str(ref), names)
    hint = f" Closest layer names: {', '.join(hints)}." if hints else ""
    return ValueError(
        f"No layer {ref!r} in model {getattr(model, 'name', model)!r}.{hint} "
        f"{received(arg, ref)}"
    )


def _by_path(model: Any, names: tuple[str, ...]) -> Any | None:
    layer = model
    for name in names:
        layer = next((c for c in _children(layer) if c.name == name), None)
        if layer is None:
            return None
    return layer


def find_layer(model: Any, ref: Any, *, arg: str = "ref") -> Any:
    """Find one layer of `model`, at any nesting depth.

    Args:
        model: a Keras 3 or tf_keras model (functional, Sequential or subclassed).
        ref: a layer name (searched at the top level, then at every depth, where
            it must be unique), a nested path `"outer/inner"`, a tuple of names
            `("outer", "inner")` (for names that contain "/"), an index into
            `model.layers`, or a layer object of the model.
        arg: the name of the caller's argument that holds `ref`, used in error
            messages (`expose` passes `"arguments"`, analysis `"layer"`).

    Returns:
        The layer object.

    Raises:
        ValueError: no such layer (the message lists the closest names), an
            ambiguous name, or an index out of range.
        TypeError: `ref` of another type, or `model` without layers.

    Example:
        >>> backbone = keras.Sequential(
        ...     [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv")],
        ...     name="backbone")
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), backbone,
        ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        >>> find_layer(model, "backbone/conv").name
        'conv'
        >>> find_layer(model, "conv") is find_layer(model, ("backbone", "conv"))
        True
    """
    if not hasattr(model, "layers"):
        raise TypeError(f"`model` must be a Keras model. {received('model', model)}")
    if isinstance(ref, bool):
        raise TypeError(f"`{arg}` must be a layer reference. {received(arg, ref)}")
    if isinstance(ref, int):
        layers = model.layers
        if not -len(layers) <= ref < len(layers):
            raise ValueError(
                f"Layer index out of range for a model with {len(layers)} layers. "
                f"{received(arg, ref)}"
            )
        return layers[ref]
    if isinstance(ref, tuple):
        layer = _by_path(model, tuple(map(str, ref)))
        if layer is None:
            raise _not_found(model, "/".join(map(str, ref)), arg)
        return layer
    if isinstance(ref, str):
        return _find_by_name(model, ref, arg)
    if hasattr(ref, "name") and hasattr(ref, "weights"):
        if any(layer is ref for _, layer in iter_layers(model)):
            return ref
        raise _not_found(model, ref.name, arg)
    raise TypeError(
        f"`{arg}` must be a layer name, a path 'outer/inner', a tuple of names, "
        f"an index or a layer. {received(arg, ref)}"
    )


def _find_by_name(model: Any, ref: str, arg: str = "ref") -> Any:
    direct = _by_path(model, (ref,))
    if direct is not None:
        return direct
    if "/" in ref:
        nested = _by_path(model, tuple(ref.split("/")))
        if nested is not None:
            return nested
    matches = [(p, layer) for p, layer in iter_layers(model) if layer.name == ref]
    if len(matches) == 1:
        return matches[0][1]
    if len(matches) > 1:
        paths = ", ".join(p for p, _ in matches)
        raise ValueError(
            f"Layer name {ref!r} is ambiguous in model {model.name!r}: it is used "
            f"at {paths}. Pass a path such as {matches[0][0]!r}. "
            f"{received(arg, ref)}"
        )
    raise _not_found(model, ref, arg)


def _node_parts(node: Any) -> tuple[Any, tuple, dict, list, bool]:
    """`(operation, args, kwargs, flat_outputs, is_input)` of a graph node."""
    if hasattr(node, "operation"):  # Keras 3
        arguments = node.arguments
        return (
            node.operation,
            tuple(arguments.args),
            dict(arguments.kwargs),
            list(node.outputs),
            node.is_input,
        )
    import tensorflow as tf

    return (
        node.layer,
        tuple(node.call_args),
        dict(node.call_kwargs),
        tf.nest.flatten(node.outputs),
        node.is_input,
    )


def _graph_nodes(graph: Any) -> Iterator[tuple[Any, tuple, dict, list]]:
    """The non-input nodes of a functional graph in execution order."""
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            operation, args, kwargs, outputs, is_input = _node_parts(node)
            if operation is not None and not is_input:
                yield operation, args, kwargs, outputs


def _fill(structure: Any, tensors: dict[int, Any]) -> Any:
    """Replace every symbolic tensor of a call's arguments by its real value."""
    if id(structure) in tensors:
        return tensors[id(structure)]
    if isinstance(structure, (list, tuple)):
        return type(structure)(_fill(s, tensors) for s in structure)
    if isinstance(structure, dict):
        return {k: _fill(v, tensors) for k, v in structure.items()}
    return structure


def _symbolic(structure: Any) -> list[Any]:
    """The symbolic tensors inside a call's arguments."""
    if isinstance(structure, (list, tuple)):
        return [t for s in structure for t in _symbolic(s)]
    if isinstance(structure, dict):
        return [t for s in structure.values() for t in _symbolic(s)]
    kind = type(structure).__name__
    return [structure] if kind == "KerasTensor" else []


def _flatten(structure: Any) -> list[Any]:
    if isinstance(structure, (list, tuple)):
        return [t for s in structure for t in _flatten(s)]
    if isinstance(structure, dict):
        return [t for k in sorted(structure) for t in _flatten(structure[k])]
    return [structure]


def run_graph(
    model: Any,
    inputs: Any,
    taps: dict[int, set[str]] | None = None,
    pre_activation: set[int] | None = None,
    override: Any = None,
    training: bool | None = None,
) -> tuple[list[Any], dict[tuple[int, str], Any]]:
    """Run `model` node by node on real tensors and collect tapped tensors.

    Args:
        model: a functional or Sequential model (Keras 3 or tf_keras).
        inputs: real tensors in the structure of `model.inputs`.
        taps: `{id(layer): links}`, links a set of `"input"` and `"output"`:
            the tensors to collect, for layers at any depth. A layer called
            several times is tapped at its last call.
        pre_activation: ids of layers whose squashing activation is skipped.
        override: optional `fn(layer, args, kwargs)` called instead of every
            leaf layer (nested models are always walked into); it
            returns the layer's result, or `NotImplemented` to call the layer
            as usual. Guided backpropagation uses it to swap ReLU gradients
            without modifying the user's model.
        training: passed to every layer that takes `training` (and was not
            given one by the model), e.g. False for inference.

    Returns:
        `(outputs, tapped)`: the model's flat outputs, and `{(id(layer), link):
        tensor}`.

    Raises:
        ValueError: the model (or a nested model holding a tap) has no graph.
    """
    taps, pre_activation = taps or {}, pre_activation or set()
    tapped: dict[tuple[int, str], Any] = {}
    context = (taps, pre_activation, tapped, override)
    outputs = _run(model, _flat_inputs(model, inputs), context, training=training)
    return outputs, tapped


def _flat_inputs(model: Any, inputs: Any) -> list[Any]:
    """`inputs` in the order of the model's inputs: a dict keyed by the input
    names is read by name (whatever structure the model was built with)."""
    graph = _graph(model)
    if isinstance(inputs, dict) and graph is not None:
        names = [str(getattr(t, "name", "")).split(":")[0] for t in graph.inputs]
        if len(names) == len(inputs) and set(names) == set(inputs):
            return [t for name in names for t in _flatten(inputs[name])]
    return _flatten(inputs)


def _run(model, flat_inputs, context, training=None):
    taps, pre_activation, tapped, override = context
    graph = _graph(model)
    if graph is None:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no layer graph (a "
            "subclassed or unbuilt model), so its intermediate layers cannot be "
            "exposed. Build it as a functional or Sequential model, or use a "
            "method that only needs the model's inputs and outputs."
        )
    tensors = {id(x): y for x, y in zip(graph.inputs, flat_inputs)}
    for operation, args, kwargs, outputs in _graph_nodes(graph):
        if any(id(t) not in tensors for t in _symbolic((args, kwargs))):
            continue
        args, kwargs = _fill(args, tensors), _fill(kwargs, tensors)
        if training is not None and "training" not in kwargs:
            if getattr(operation, "_call_has_training_arg", False) or getattr(
                operation, "_expects_training_arg", False
            ):
                kwargs["training"] = training
        key = id(operation)
        if "input" in taps.get(key, ()):
            tapped[(key, "input")] = args[0] if len(args) == 1 else list(args)
        result = NotImplemented
        if is_container(operation) and _graph(operation) is not None:
            # Walk into nested models rather than calling them: their taps are
            # reached, and their input spec does not refuse other image sizes.
            result = _run(
                operation,
                _flatten(args[0] if len(args) == 1 else list(args)),
                context,
                training=kwargs.get("training", training),
            )
        elif key in pre_activation:
            result = call_pre_activation(operation, *args, **kwargs)
        elif override is not None:
            result = override(operation, args, kwargs)
        if result is NotImplemented:
            result = operation(*args, **kwargs)
        if "output" in taps.get(key, ()):
            tapped[(key, "output")] = result
        for symbolic, value in zip(outputs, _flatten(result)):
            tensors[id(symbolic)] = value
    return [tensors[id(x)] for x in graph.outputs]


class _WithoutActivation:
    """A read-only view of a layer whose `activation` is the identity."""

    def __init__(self, layer: Any) -> None:
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str) -> Any:
        if name == "activation":
            return _identity
        return getattr(self._layer, name)


def _identity(x: Any) -> Any:
    return x


def output_shape(layer: Any) -> tuple | None:
    """The output shape of `layer` at its first call, or None if unknown."""
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def squashing_activation(layer: Any) -> str | None:
    """The name of `layer`'s softmax/sigmoid activation, or None."""
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return name if name in SQUASHING_ACTIVATIONS else None


def call_pre_activation(layer: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `layer` with its activation replaced by the identity.

    The layer's own `call` runs on a view of the layer, so its weights are used
    and nothing of the user's layer is modified, even for a moment.
    """
    kwargs.pop("training", None)
    view = _WithoutActivation(layer)
    return type(layer).call(view, *args, **kwargs)


def layer_dependencies(model: Any) -> list[tuple[str, list[str]]]:
    """Every layer's path with the paths of the layers feeding it, in order.

    Nested models appear as a layer whose inputs feed the nested model's input
    layer (path `"outer/<input name>"`) and whose own dependencies are the
    nested model's output layers, so the whole graph reads as one flat DAG.
    """
    result: list[tuple[str, list[str]]] = []
    _collect_inbound(model, "", {}, result)
    return result


def _collect_inbound(model, prefix, feeding, result):
    graph = _graph(model)
    if graph is None:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no layer graph (a "
            "subclassed or unbuilt model), so its layer dependencies are unknown."
        )
    producer: dict[int, str] = {}
    for index, tensor in enumerate(graph.inputs):
        history = getattr(tensor, "_keras_history", None)
        layer = history[0] if history is not None else None
        path = f"{prefix}{getattr(layer, 'name', f'input_{index}')}"
        result.append((path, list(feeding.get(index, []))))
        producer[id(tensor)] = path
    for operation, args, kwargs, outputs in _graph_nodes(graph):
        path = f"{prefix}{operation.name}"
        sources = sorted(
            {producer[id(t)] for t in _symbolic((args, kwargs)) if id(t) in producer}
        )
        if is_container(operation):
            inner_feed = dict(enumerate([sources] * len(_graph(operation).inputs)))
            inner_out = _collect_inbound(operation, f"{path}/", inner_feed, result)
            sources = inner_out
        if path not in (p for p, _ in result):
            result.append((path, sources))
        for symbolic in outputs:
            producer[id(symbolic)] = path
    return sorted({producer[id(t)] for t in graph.outputs if id(t) in producer})


def output_layers(model: Any) -> list[tuple[tuple[str, ...], Any]]:
    """`(names, layer)` for each output of a graph model, in flat output order.

    `names` holds the name of the layer producing the output and, for a model
    built with a dict of outputs, its key. An output produced by a nested model
    is traced to the layer inside it that produces it. Empty for a model
    without a layer graph.
    """
    graph = _graph(model)
    if graph is None:
        return []
    keys: list[str] = []
    struct = getattr(graph, "_outputs_struct", getattr(graph, "_nested_outputs", None))
    if isinstance(struct, dict):
        keys = sorted(struct)
    result = []
    for index, tensor in enumerate(graph.outputs):
        layer = _producer(tensor)
        names = (layer.name,) if layer is not None else ()
        if index < len(keys) and keys[index] not in names:
            names = (keys[index], *names)
        result.append((names, layer))
    return result


def _producer(tensor: Any) -> Any:
    """The leaf layer producing `tensor`, looking inside nested models."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    layer, index = history[0], history[2]
    inner = _graph(layer) if is_container(layer) else None
    if inner is not None and index < len(inner.outputs):
        return _producer(inner.outputs[index])
    return layer
