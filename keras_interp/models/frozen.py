"""Any frozen TensorFlow GraphDef (`.pb`) as a differentiable TF2 model.

The graph is imported once inside `tf.compat.v1.wrap_function`, its input node
replaced (`input_map`) by a float32 placeholder `(None, None, None, C)` when the
graph accepts any image size (else by the shape the graph declares); then
`prune` cuts the sub-graphs that are run: input -> requested layers, input ->
logits, and `(input, layer) -> logits`. The pruned functions run eagerly or
inside `tf.function` and are differentiable under `tf.GradientTape`.

Gradients w.r.t. a layer: a pruned function is one op on the tape, so a layer
it computes has no path to the logits computed by another call. To get
`d logits / d activations`, `logits_and_layer` computes the activations with
the head function, then the logits with a *tail* function whose feeds are the
input and the layer tensor (everything upstream of the layer is cut away), so
`logits = tail(x, activations)` is recorded on the caller's tape as a function
of the activations.
"""

from __future__ import annotations

import os
import pathlib
import threading
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from keras_interp._validation import closest, received
from keras_interp.models.base import Model

#: Op types that are never listed as layers.
_NOT_LAYERS = frozenset({"Const", "NoOp", "Placeholder", "PlaceholderWithDefault"})
#: Ops that mean a graph still holds variables (not frozen).
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def load_graph_def(model_path: Any) -> tf.compat.v1.GraphDef:
    """Read a frozen `GraphDef` from a `.pb` file (or pass one through).

    Args:
        model_path: a path (`str`, `os.PathLike`), the file's bytes, or a
            `tf.compat.v1.GraphDef`.

    Returns:
        The parsed `tf.compat.v1.GraphDef`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a GraphDef (a SavedModel directory gets a
            hint to use `load_saved_model`), is empty, or holds variables.
        TypeError: `model_path` is of another type.
    """
    if isinstance(model_path, tf.compat.v1.GraphDef):
        graph_def = model_path
    else:
        if isinstance(model_path, (bytes, bytearray)):
            data = bytes(model_path)
        elif isinstance(model_path, (str, os.PathLike)):
            path = pathlib.Path(model_path).expanduser()
            if path.is_dir():
                raise ValueError(
                    "`model_path` must be a frozen GraphDef `.pb` file, not a "
                    "directory; for a SavedModel directory use "
                    f"`keras_interp.models.load_saved_model`. "
                    f"{received('model_path', str(model_path))}"
                )
            if not path.is_file():
                raise FileNotFoundError(
                    "`model_path` must name an existing frozen GraphDef `.pb` "
                    f"file. {received('model_path', str(model_path))}"
                )
            data = path.read_bytes()
        else:
            raise TypeError(
                "`model_path` must be a path to a frozen GraphDef `.pb` file, its "
                "bytes or a tf.compat.v1.GraphDef. "
                f"{received('model_path', model_path)}"
            )
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(data)
        except Exception as error:  # google.protobuf.message.DecodeError
            raise ValueError(
                f"`model_path` is not a frozen GraphDef ({error}). "
                f"{received('model_path', _shown_path(model_path))}"
            ) from None
    if not graph_def.node:
        raise ValueError(
            "`model_path` holds an empty graph (no nodes): not a frozen "
            f"GraphDef. {received('model_path', _shown_path(model_path))}"
        )
    variables = [n.name for n in graph_def.node if n.op in _VARIABLE_OPS]
    if variables:
        raise ValueError(
            "`model_path` holds a graph with variables (e.g. "
            f"{variables[0]!r}), not a frozen one; freeze it first (e.g. with "
            "`convert_variables_to_constants_v2`). "
            f"{received('model_path', _shown_path(model_path))}"
        )
    return graph_def


def _shown_path(value: Any) -> Any:
    return str(value) if isinstance(value, (str, os.PathLike)) else value


def _node_name(name: Any, arg: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"`{arg}` must be a node name (a string). {received(arg, name)}"
        )
    return name[:-2] if name.endswith(":0") else name


def _check_node(name: str, nodes: dict, arg: str) -> str:
    if name not in nodes:
        hints = closest(name, nodes)
        hint = f" Closest names: {', '.join(hints)}." if hints else ""
        raise ValueError(
            f"`{arg}` must name a node of the graph; {name!r} is not one."
            f"{hint} {received(arg, name)}"
        )
    return name


def _downstream(graph_def: tf.compat.v1.GraphDef, source: str) -> list[str]:
    """Names of the nodes fed (directly or not) by `source`, in graph order."""
    consumers: dict[str, list[str]] = {}
    for node in graph_def.node:
        for link in node.input:
            if not link.startswith("^"):
                consumers.setdefault(link.split(":")[0], []).append(node.name)
    seen, stack = {source}, [source]
    while stack:
        for name in consumers.get(stack.pop(), ()):
            if name not in seen:
                seen.add(name)
                stack.append(name)
    return [n.name for n in graph_def.node if n.name in seen and n.name != source]


class FrozenGraphModel(Model):
    """Any frozen GraphDef `.pb` behind CAVlib's `Model` interface.

    Layers are graph nodes (their first output). Activations of several
    layers come from one forward pass; `logits_and_layer` and `exposed` give
    the gradients TCAV and the attribution methods need (see the module
    docstring for how the layer is put on the tape).

    Args:
        model_path: the `.pb` file (a path, its bytes or a `GraphDef`).
        input_name: the node the image is fed to (usually a Placeholder).
        output_names: the node names offered as layers. Defaults to `None`:
            every node computed from the input.
        input_value_range: `(low, high)`; a [0, 1] image is fed as
            `x * (high - low) + low`.
        logits_name: the node holding the class scores `(B, K)`, needed by
            `logits_and_layer` and `exposed`. Defaults to `None` (none).
        image_size: the square side `prepare` resizes images to. Defaults to
            the input's declared size, or 224 when it is not fixed.

    Raises:
        ValueError: a named node is missing from the graph (the message lists
            the closest names), or a bad file (see `load_graph_def`).

    Example:
        A graph frozen here from a tiny Keras model (a `.pb` file's path works
        the same way, e.g. lucid's GoogLeNet with `input_value_range=(-117,
        138)` and `logits_name="softmax2_pre_activation"`):

        >>> from keras_interp.models.saved import freeze_function
        >>> from keras_interp.testing.models import gap_dense
        >>> net = gap_dense(size=16)  # conv (4 channels) -> gap -> 3 logits
        >>> fn = tf.function(lambda x: net(x)).get_concrete_function(
        ...     tf.TensorSpec([None, 16, 16, 3], tf.float32, name="input"))
        >>> graph_def, _, logits = freeze_function(fn)
        >>> relu = next(n.name for n in graph_def.node if n.name.endswith("Relu"))
        >>> model = FrozenGraphModel(graph_def, "input", output_names=[relu],
        ...                          logits_name=logits.split(":")[0])
        >>> model.get_activation_for_image(np.ones((20, 20, 3)), relu).shape
        (1024,)
        >>> images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3))
        >>> scores, saliency = keras_interp.methods.gradients(model.exposed(), images)
        >>> scores.shape, saliency.shape
        (TensorShape([2, 3]), TensorShape([2, 16, 16, 3]))

    References:
        TensorFlow, Migrate to TF2: "wrap_frozen_graph" (`wrap_function` and
        `prune`). Olah et al., Feature Visualization, Distill 2017 (lucid's
        model zoo of frozen graphs with an input value range per model).
    """

    def __init__(
        self,
        model_path: Any,
        input_name: str = "input",
        output_names: Sequence[str] | None = None,
        input_value_range: tuple[float, float] = (0, 1),
        logits_name: str | None = None,
        *,
        image_size: int | None = None,
    ) -> None:
        graph_def = load_graph_def(model_path)
        in_memory = isinstance(model_path, (bytes, bytearray, tf.compat.v1.GraphDef))
        super().__init__(None if in_memory else model_path, input_value_range)
        nodes = {node.name: node for node in graph_def.node}
        name = _node_name(input_name, "input_name")
        self.input_name = _check_node(name, nodes, "input_name")
        names = _downstream(graph_def, self.input_name)
        if output_names is None:
            names = [n for n in names if nodes[n].op not in _NOT_LAYERS]
        else:
            if isinstance(output_names, str):
                output_names = [output_names]
            names = [
                _check_node(_node_name(n, "output_names"), nodes, "output_names")
                for n in output_names
            ]
        self._names = list(dict.fromkeys(names))
        self.logits_name = None
        if logits_name is not None:
            name = _node_name(logits_name, "logits_name")
            self.logits_name = _check_node(name, nodes, "logits_name")
        self._wrapped, shape = _import(graph_def, nodes[self.input_name])
        #: Whether the graph was imported with an unknown height and width.
        self.variable_size = shape[1] is None and shape[2] is None
        if image_size is None:
            declared = _input_shape(nodes[self.input_name])
            square = declared[1] and declared[1] == declared[2]
            image_size = declared[1] if square else 224
        self.image_size = int(image_size)
        self._functions: dict[tuple, Any] = {}
        self._exposed: dict[tuple, FrozenFunction] = {}
        self._functions_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The graph file's stem, or `"frozen_graph"`."""
        if isinstance(self.model_path, (str, os.PathLike)):
            return pathlib.Path(self.model_path).stem
        return "frozen_graph"

    @property
    def output_layer_names(self) -> list[str]:
        """The node names offered as layers."""
        return list(self._names)

    def check_layer(self, layer_name: str) -> str:
        """Return `layer_name`, or raise ValueError naming the closest layers."""
        if not isinstance(layer_name, str) or layer_name not in self._names:
            hints = closest(str(layer_name), self._names)
            shown = hints or self._names[:20]
            more = ", ..." if not hints and len(self._names) > 20 else ""
            hint = ("Closest names: " if hints else "Layers: ") + ", ".join(shown)
            hint += more
            raise ValueError(
                f"Unknown layer name {layer_name!r} for {self.name}. {hint}. "
                f"{received('layer_name', layer_name)}"
            )
        return layer_name

    # -- the pruned functions ------------------------------------------------
    def _tensor(self, name: str) -> tf.Tensor:
        return self._wrapped.graph.get_tensor_by_name(f"{name}:0")

    def _function(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> Any:
        """A pruned function `(x, *fed layers) -> [fetches]`, cached."""
        key = (feeds, fetches)
        with self._functions_lock:
            if key not in self._functions:
                placeholder = self._tensor("keras_interp_input")
                tensors = [placeholder, *(self._tensor(n) for n in feeds)]
                specs = tuple(tf.TensorSpec(t.shape, t.dtype) for t in tensors)
                self._functions[key] = self._wrapped.prune(
                    feeds=tensors,
                    fetches=[self._tensor(n) for n in fetches],
                    input_signature=(specs, {}),
                )
            return self._functions[key]

    def _logits(self) -> str:
        if self.logits_name is None:
            raise ValueError(
                f"{self.name} has no logits: pass `logits_name=` (the node of the "
                f"class scores) to FrozenGraphModel. {received('logits_name', None)}"
            )
        return self.logits_name

    def layer_outputs(self, x: tf.Tensor, layer_names: Sequence[str]) -> list:
        """Activations of `layer_names` for inputs `x` already in
        `input_value_range`, in one forward pass."""
        names = tuple(self.check_layer(n) for n in layer_names)
        return list(self._function((), names)(tf.cast(x, tf.float32)))

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """The logits `(B, K)` for inputs `x` already in `input_value_range`."""
        return self._function((), (self._logits(),))(tf.cast(x, tf.float32))[0]

    def logits_and_layer(
        self, x: tf.Tensor, layer_name: str
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """`(logits, activations)` for inputs `x` already in `input_value_range`.

        The logits are computed from the activations by a second pruned
        function, inside the caller's tape, so `tape.gradient(logits,
        activations)` exists (partial derivatives: the input is also fed to the
        tail, for any path that bypasses the layer).

        Raises:
            ValueError: unknown layer, or the model has no `logits_name`.
        """
        name, logits = self.check_layer(layer_name), self._logits()
        x = tf.cast(x, tf.float32)
        (activations,) = self._function((), (name,))(x)
        (scores,) = self._function((name,), (logits,))(x, activations)
        return scores, activations

    def exposed(
        self, layer_name: str | None = None, *, scale_inputs: bool = True
    ) -> FrozenFunction:
        """A callable for the attribution methods.

        With `layer_name`, `f(x) -> [logits, activations]` (what
        `methods.gradcam` and the other CAM methods take); without, `f(x) ->
        logits` (what `methods.gradients` and the other gradient methods
        take).

        Args:
            layer_name: one of `output_layer_names`, or `None`.
            scale_inputs: `True` (default): `f` takes images in [0, 1] and maps
                them to `input_value_range` (so gradients are w.r.t. [0, 1]
                pixels); `False`: `f` takes inputs already in the range.

        Returns:
            A `FrozenFunction`, the same object for the same arguments (so
            the engine's compiled-function cache, keyed by model, is reused).

        Raises:
            ValueError: unknown layer, or the model has no `logits_name`.

        Example:
            >>> from keras_interp.models import GooglenetModel
            >>> model = GooglenetModel()  # doctest: +SKIP
            >>> scores, maps = keras_interp.methods.gradcam(  # doctest: +SKIP
            ...     model.exposed("mixed5b"), images, [[207]])
        """
        self._logits()
        if layer_name is not None:
            self.check_layer(layer_name)
        key = (layer_name, bool(scale_inputs))
        if key not in self._exposed:
            self._exposed[key] = FrozenFunction(self, layer_name, bool(scale_inputs))
        return self._exposed[key]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, input_name={self.input_name!r}, "
            f"{len(self._names)} layers, input_value_range={self.input_value_range}, "
            f"logits_name={self.logits_name!r})"
        )


class FrozenFunction:
    """A frozen-graph model as a Keras-like callable (see
    `FrozenGraphModel.exposed`): `f(x) -> logits` or `f(x) -> [logits,
    activations]`; it accepts and ignores `training=`."""

    def __init__(self, model: FrozenGraphModel, layer_name: str | None, scale: bool):
        self.model = model
        self.layer_name = layer_name
        self.scale_inputs = scale
        self.name = f"{model.name}_exposed" if layer_name else model.name

    def __call__(self, inputs: Any, training: Any = None) -> Any:
        x = tf.cast(tf.convert_to_tensor(inputs), tf.float32)
        if self.scale_inputs:
            low, high = self.model.input_value_range
            x = x * (high - low) + low
        if self.layer_name is None:
            return self.model.logits(x)
        return list(self.model.logits_and_layer(x, self.layer_name))

    def __repr__(self) -> str:
        return f"FrozenFunction({self.model.name!r}, layer_name={self.layer_name!r})"


def _input_shape(node: Any) -> tuple:
    """The declared `(B, H, W, C)` of a placeholder, `None` where unknown."""
    shape = node.attr["shape"].shape if "shape" in node.attr else None
    if shape is None or shape.unknown_rank or len(shape.dim) != 4:
        return (None, None, None, 3)
    return tuple(d.size if d.size >= 0 else None for d in shape.dim)


def _import(graph_def: tf.compat.v1.GraphDef, node: Any) -> tuple[Any, tuple]:
    """Import the graph with a float32 placeholder mapped onto `node`.

    Tries `(None, None, None, C)` first (any batch and image size), then the
    declared height and width, then the declared shape, keeping the first the
    graph's shape inference accepts.
    """
    declared = _input_shape(node)
    dtype = tf.as_dtype(node.attr["dtype"].type) if "dtype" in node.attr else tf.float32
    channels = declared[3] or 3
    candidates = [(None, None, None, channels), (None, *declared[1:]), declared]
    error: Exception | None = None
    for shape in dict.fromkeys(candidates):

        def build(shape: tuple = shape) -> None:
            x = tf.compat.v1.placeholder(tf.float32, shape, name="keras_interp_input")
            fed = x if dtype == tf.float32 else tf.cast(x, dtype)
            tf.compat.v1.import_graph_def(
                graph_def, input_map={f"{node.name}:0": fed}, name=""
            )

        try:
            return tf.compat.v1.wrap_function(build, []), shape
        except (ValueError, tf.errors.InvalidArgumentError) as err:
            error = err
    raise ValueError(
        f"The graph cannot be fed at its input {node.name!r}: {error}. "
        f"{received('input_name', node.name)}"
    )
