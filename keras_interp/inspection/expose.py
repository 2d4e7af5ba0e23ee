"""`expose()`: a model that emits the logits and the activations to explain."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from keras_interp._validation import check_one_of, received
from keras_interp.inspection.graph import (
    find_layer,
    has_graph,
    is_tf_keras,
    output_layers,
    output_shape,
    run_graph,
    squashing_activation,
)
from keras_interp.inspection.heads import get_global_pooling_layer, get_logits_layer
from keras_interp.inspection.targets import Target

LINKS = ("input", "output")


def _endpoints(model: Any, refs: Any, default_link: str, arg: str) -> list:
    """Resolve `refs` (one reference or a list) to `(layer, link, target)`.

    A tuple is one nested path, not a list of layers. A dict reads
    `{"name" | "layer": ref, "link": "input" | "output"}` as in
    keras-explainable. A `Target` names a layer's output and how it is scored.
    """
    if refs is None:
        return []
    if not isinstance(refs, list):
        refs = [refs]
    pairs = []
    for ref in refs:
        link, target = default_link, None
        if isinstance(ref, Target):
            target = ref
            if ref.output is not None:
                layer = select_output_layer(model, ref.output)
            elif ref.layer is not None:
                layer = find_layer(model, ref.layer, arg=f"{arg}.layer")
            else:
                layer = _default_logits_layer(model)
            target.check_shape(output_shape(layer), layer.name)
            pairs.append((layer, "output", target))
            continue
        if isinstance(ref, dict):
            unknown = set(ref) - {"name", "layer", "link"}
            if unknown or not ({"name", "layer"} & set(ref)):
                raise ValueError(
                    f"A `{arg}` dict takes the keys 'name' or 'layer', and "
                    f"'link'. {received(arg, ref)}"
                )
            link = check_one_of(ref.get("link", default_link), LINKS, f"{arg}.link")
            ref = ref.get("layer", ref.get("name"))
        pairs.append((find_layer(model, ref, arg=arg), link, target))
    return pairs


def _output_list(model: Any) -> str:
    """The outputs of `model` as `0: 'a', 1: 'b'` for error messages."""
    return ", ".join(
        f"{i}: {' / '.join(map(repr, names))}"
        for i, (names, _) in enumerate(output_layers(model))
    )


def select_output_layer(model: Any, output: int | str) -> Any:
    """The layer producing one output of `model`, by index or name.

    Args:
        model: a functional or Sequential model.
        output: the index in `model.outputs` (negative counts from the end),
            or the name of the layer producing the output (or its key for a
            model built with a dict of outputs).

    Returns:
        The layer (inside nested models if a nested model produces it).

    Raises:
        ValueError: no such output; the message lists the model's outputs.
    """
    outputs = output_layers(model)
    if isinstance(output, str):
        found = [layer for names, layer in outputs if output in names]
    else:
        found = [outputs[output][1]] if -len(outputs) <= output < len(outputs) else []
    if not found or found[0] is None:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no output {output!r}; "
            f"its outputs are {_output_list(model)}. {received('output', output)}"
        )
    return found[0]


def _default_logits_layer(model: Any) -> Any:
    """The logits layer of a single-output model (`get_logits_layer` refuses a
    model with several outputs, naming them and `Target(output=...)`)."""
    return get_logits_layer(model)


def check_one_output(model: Any, arg: str = "model") -> None:
    """Refuse a plain graph model with several outputs, before any tracing.

    Which output a method explains is never guessed: the message lists the
    outputs and says how to choose one (`select_output`, `Target(output=...)`).
    Exposed models, single-output models and other callables pass.

    Raises:
        ValueError: `model` is a functional model with several outputs.
    """
    if is_exposed(model) or not has_graph(model):
        return
    count = len(output_layers(model))
    if count > 1:
        name = getattr(model, "name", model)
        raise ValueError(
            f"Model {name!r} has {count} outputs ({_output_list(model)}): choose "
            "the one to explain with `keras_interp.inspection.select_output(model, "
            "output)` (an index or name), or for a CAM `expose(model, outputs="
            f"Target(output=...))`. {received(arg, name)}"
        )


def select_output(model: Any, output: int | str) -> Any:
    """A model returning only one output of `model`, for any method.

    The same as `expose(model, arguments=[], outputs=Target(output=output))`:
    its only output is the selected output's pre-activation scores, which every
    method that takes a plain model (gradients, perturbation) explains. CAMs
    take `expose(model, arguments=..., outputs=Target(output=output))`.

    Args:
        model: a functional or Sequential model with one or more outputs.
        output: the output's index in `model.outputs` or its name.

    Returns:
        An exposed model `x -> [scores (B, K)]`.

    Raises:
        ValueError: no such output (the message lists them).

    Example:
        >>> inputs = keras.Input((4,))
        >>> two_heads = keras.Model(inputs, [keras.layers.Dense(3, name="a")(inputs),
        ...                                  keras.layers.Dense(2, name="b")(inputs)])
        >>> select_output(two_heads, "b")(np.ones((1, 4)))[0].shape
        TensorShape([1, 2])
    """
    return expose(model, arguments=[], outputs=Target(output=output))


def expose(model: Any, arguments: Any = None, outputs: Any = None) -> Any:
    """A model from `model`'s inputs to `[*outputs, *arguments]`.

    Methods that explain an intermediate layer (the CAM family, FullGrad) take
    the exposed model: `logits, activations = expose(model)(x)`. Layers may sit
    at any nesting depth, e.g. inside a pretrained backbone nested in the user's
    classifier, the case where other libraries fail with "graph disconnected".
    The exposed model runs the user's layers, sharing their weights, and leaves
    the user's model untouched: no layer gains a node, no attribute is set.

    If an output layer ends in a softmax or sigmoid activation, the exposed
    output is its pre-activation (the logits), computed with the layer's own
    weights; a separate Activation/Softmax layer after the logits layer is
    simply not reached.

    Args:
        model: a functional or Sequential model, Keras 3 or tf_keras.
        arguments: the layer(s) whose activations are exposed: a reference as
            accepted by `find_layer` (name, path `"outer/inner"`, tuple of
            names, index, layer), a dict `{"name": ref, "link": "input"}` to
            take a layer's input instead of its output, or a list of these.
            Defaults to the input of the last global pooling layer.
        outputs: the output layer(s), in the same forms, or a `Target` (what is
            explained: a channel of any layer reduced over space, a unit at a
            position, class probabilities, one output of a model with several,
            `Target(output=index or name)`). Defaults to the logits layer
            (`get_logits_layer`) of a model with one output; a model with
            several outputs must choose one. An empty list exposes only
            `arguments`.

    Returns:
        A `keras.Model` (a `tf_keras.Model` for tf_keras models) whose call
        returns the list `[*outputs, *arguments]`, e.g. `[logits (B, K),
        activations (B, H', W', C)]`. It also carries `source_model`,
        `logits_layer` (the first output layer, or None) and `endpoints`
        (`(path-or-name, link)` pairs).

    Raises:
        ValueError: unknown layer (with the closest names) or output, no
            logits or global pooling layer to default to, a model with several
            outputs and no `Target(output=...)`, or a model without a layer graph
            (subclassed) asked for an intermediate layer.

    Example:
        >>> exposed = expose(keras.applications.ResNet50V2(weights=None))
        >>> logits, activations = exposed(np.zeros((1, 224, 224, 3)))
        >>> activations.shape
        TensorShape([1, 7, 7, 2048])

    References:
        David, keras-explainable (2022), `inspection.expose`.
    """
    if not has_graph(model):
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no layer graph (a "
            "subclassed or unbuilt model), so its intermediate layers cannot be "
            "exposed. Build it as a functional or Sequential model, or use a "
            "method that only needs the model's inputs and outputs, such as "
            "`gradients`. " + received("model", type(model).__name__)
        )
    if outputs is None:
        out = [(_default_logits_layer(model), "output", None)]
    else:
        out = _endpoints(model, outputs, "output", "outputs")
    if arguments is None:
        args = [(get_global_pooling_layer(model), "input", None)]
    else:
        args = _endpoints(model, arguments, "output", "arguments")
    if not out + args:
        raise ValueError(
            "expose() needs at least one layer in `outputs` or `arguments`. "
            f"{received('outputs', outputs)}"
        )
    pre_activation = {
        id(layer)
        for layer, link, _ in out
        if link == "output" and squashing_activation(layer)
    }
    cls = _exposed_class("tf_keras" if is_tf_keras(model) else "keras")
    return cls(model, out + args, pre_activation, num_outputs=len(out))


@functools.cache
def _exposed_class(framework: str) -> type:
    """The `ExposedModel` class for Keras 3 or tf_keras, made once."""
    if framework == "tf_keras":
        import tf_keras as backend
    else:
        import keras as backend

    class ExposedModel(backend.Model):
        """Runs a model's layers and returns the tensors of chosen layers."""

        def __init__(self, model, endpoints, pre_activation, num_outputs):
            super().__init__(name=f"{model.name}_exposed")
            self.source_model = model
            # Plain attributes, not tracked: the weights come from source_model.
            object.__setattr__(self, "_endpoint_pairs", tuple(endpoints))
            object.__setattr__(self, "_pre_activation", frozenset(pre_activation))
            object.__setattr__(self, "_num_outputs", num_outputs)

        @property
        def endpoints(self) -> list[tuple[str, str]]:
            return [(layer.name, link) for layer, link, _ in self._endpoint_pairs]

        @property
        def logits_layer(self):
            """The layer whose plain output is the first exposed output, or None
            (no outputs, or a `Target` that reduces or squashes it)."""
            if not self._num_outputs:
                return None
            layer, _, target = self._endpoint_pairs[0]
            plain = target is None or (
                target.reduce is None
                and target.position is None
                and target.activation is None
            )
            return layer if plain else None

        def call(self, inputs, training=False):
            return self.run(inputs)

        def run(self, inputs, override=None, training=None):
            """The exposed tensors, optionally with `override(layer, args,
            kwargs)` in place of every leaf layer (see `graph.run_graph`)."""
            taps: dict[int, set[str]] = {}
            for layer, link, _ in self._endpoint_pairs:
                taps.setdefault(id(layer), set()).add(link)
            _, tapped = run_graph(
                self.source_model,
                inputs,
                taps,
                set(self._pre_activation),
                override=override,
                training=training,
            )
            results = []
            for layer, link, target in self._endpoint_pairs:
                tensor = tapped[(id(layer), link)]
                results.append(tensor if target is None else target(tensor))
            return results

        def get_config(self):
            return {"name": self.name, "endpoints": self.endpoints}

    return ExposedModel


def is_exposed(model: Any) -> bool:
    """Whether `model` was made by `expose()`."""
    return hasattr(model, "_endpoint_pairs") and hasattr(model, "source_model")


def exposed_layers(model: Any) -> Sequence[Any]:
    """The layers an exposed model returns, in order (empty for other models)."""
    return [layer for layer, _, _ in getattr(model, "_endpoint_pairs", ())]


def hand_exposed(model: Any) -> bool:
    """Whether `model` is exposed by hand, keras-explainable's way:
    `keras.Model(inputs, [scores, activations, ...])` with scores `(B, K)` and
    every other output spatial (rank >= 3). A classifier with several heads
    (all rank 2) is not: which head to explain must be chosen.
    """
    outputs = getattr(model, "outputs", None)
    if not isinstance(outputs, (list, tuple)) or len(outputs) < 2:
        return False
    ranks = [getattr(getattr(o, "shape", None), "rank", None) for o in outputs]
    if ranks[0] is None:
        ranks = [len(getattr(o, "shape", ())) for o in outputs]
    return ranks[0] == 2 and all(rank is not None and rank >= 3 for rank in ranks[1:])
