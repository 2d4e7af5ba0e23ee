"""Objectives to MAXIMISE, immutable and composable with `+`, `-`, `*`.

An `Objective` wraps `fn(context) -> value`, where value is per image `(B,)`
or a scalar (a batch-level term such as `diversity`). `render` maximises the
batch mean of a per-image value (plus scalar terms). Objectives combine with
numbers and with each other (`channel(...) + 0.1 * total_variation()`,
`-obj`, `sum(objectives)`), always making a new object; `objective.layers`
lists the layers the objective reads so `render` can expose them all in one
forward pass.

The image regularisers (`l1`, `l2`, `total_variation`, `high_frequency`,
`alpha_minimality`) are in `regularizers`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_one_of, received
from keras_interp.synthesis.context import Context, layer_key


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A quantity to maximise: `fn(context) -> (B,)` per image, or a scalar.

    Args:
        fn: the function of a `Context`.
        name: a readable description (`"channel(conv, 3) + 0.1 * tv"`).
        layers: the layer references `fn` reads through `context.layer`.
        needs_logits: whether `fn` reads `context.logits`.
        config: a serialisable description (`get_config`), or None.

    Example:
        >>> from keras_interp.synthesis import total_variation
        >>> obj = channel("conv", 3) - 0.01 * total_variation()
        >>> obj.layers
        ('conv',)
    """

    fn: Callable[[Context], Any]
    name: str = "objective"
    layers: tuple = ()
    needs_logits: bool = False
    config: Any = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"`fn` must be callable. {received('fn', self.fn)}")
        object.__setattr__(self, "layers", tuple(dict.fromkeys(self.layers)))

    def __call__(self, context: Context) -> tf.Tensor:
        return tf.cast(self.fn(context), tf.float32)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- algebra ---------------------------------------------------------------
    def _combine(self, other: Any, op: str, apply: Callable, swap=False):
        if isinstance(other, Objective):
            a, b = (other, self) if swap else (self, other)
            return Objective(
                lambda ctx: apply(a(ctx), b(ctx)),
                name=f"({a.name} {op} {b.name})",
                layers=a.layers + b.layers,
                needs_logits=a.needs_logits or b.needs_logits,
                config=_op(op, a.config, b.config),
            )
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            number = float(other)
            if swap:
                fn = lambda ctx: apply(number, self(ctx))  # noqa: E731
                name = f"{number:g} {op} {self.name}"
                config = _op(op, number, self.config)
            else:
                fn = lambda ctx: apply(self(ctx), number)  # noqa: E731
                name = f"{self.name} {op} {number:g}"
                config = _op(op, self.config, number)
            return Objective(fn, f"({name})", self.layers, self.needs_logits, config)
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, "+", lambda a, b: a + b)

    def __radd__(self, other):
        if isinstance(other, numbers.Real) and other == 0:
            return self  # sum() starts from 0
        return self._combine(other, "+", lambda a, b: a + b, swap=True)

    def __sub__(self, other):
        return self._combine(other, "-", lambda a, b: a - b)

    def __rsub__(self, other):
        return self._combine(other, "-", lambda a, b: a - b, swap=True)

    def __mul__(self, other):
        return self._combine(other, "*", lambda a, b: a * b)

    def __rmul__(self, other):
        return self._combine(other, "*", lambda a, b: a * b, swap=True)

    def __truediv__(self, other):
        if isinstance(other, Objective):
            return NotImplemented
        return self._combine(other, "/", lambda a, b: a / b)

    def __neg__(self):
        return Objective(
            lambda ctx: -self(ctx),
            f"-{self.name}",
            self.layers,
            self.needs_logits,
            _op("neg", self.config),
        )

    # -- serialisation ---------------------------------------------------------
    def get_config(self) -> dict:
        """A JSON-able description; raises for objectives built from a bare fn."""
        if self.config is None:
            raise ValueError(
                f"Objective {self.name!r} was built from a function and cannot be "
                "serialised. Build it from the constructors of this module. "
                f"{received('objective', self.name)}"
            )
        return self.config

    @classmethod
    def from_config(cls, config: Mapping) -> Objective:
        """Rebuild an objective from `get_config()`."""
        if "op" in config:
            args = [
                a if isinstance(a, (int, float)) else cls.from_config(a)
                for a in config["args"]
            ]
            if config["op"] == "neg":
                return -args[0]
            ops = {
                "+": lambda a, b: a + b,
                "-": lambda a, b: a - b,
                "*": lambda a, b: a * b,
                "/": lambda a, b: a / b,
            }
            return ops[config["op"]](*args)
        name = config.get("constructor")
        constructors = _constructors()
        if name not in constructors:
            raise ValueError(
                f"Unknown objective constructor; known: {sorted(constructors)}. "
                f"{received('config', config)}"
            )
        return constructors[name](**config["args"])


def _op(op: str, *args: Any) -> dict | None:
    if any(a is None for a in args):
        return None
    return {"op": op, "args": list(args)}


def _config(constructor: str, **args: Any) -> dict:
    return {"constructor": constructor, "args": args}


def _json(value: Any) -> Any:
    array = np.asarray(value)
    return array.tolist() if array.ndim else array.item()


def _pick(values: tf.Tensor, index: Any, where: str = "the layer") -> tf.Tensor:
    """`values[:, index]` for an int, or one index per image for a sequence.

    Raises:
        ValueError: an index past the last unit of `values` (`where` names the
            layer or the logits in the message), or a sequence whose length
            differs from the batch size.
    """
    width = values.shape[-1]
    largest = max(index) if isinstance(index, tuple) else index
    if width is not None and largest >= width:
        raise ValueError(
            f"`index` {largest} is out of range for {where}, which has {width} "
            f"units (valid: 0 to {width - 1}). {received('index', index)}"
        )
    batch = values.shape[0]
    if isinstance(index, tuple) and batch is not None and len(index) != batch:
        raise ValueError(
            f"`index` gives {len(index)} indices (one per image) but the batch has "
            f"{batch} images. {received('index', index)}"
        )
    if isinstance(index, (int, np.integer)):
        return values[:, int(index)]
    index = tf.constant(np.asarray(index, np.int32))
    return tf.gather(values, index[:, None], axis=1, batch_dims=1)[:, 0]


def _check_index(index: Any, arg: str = "index") -> Any:
    array = np.asarray(index)
    if array.dtype.kind not in "iu" or array.ndim > 1 or (array < 0).any():
        raise ValueError(
            f"`{arg}` must be a non-negative integer, or one per image. "
            f"{received(arg, index)}"
        )
    return int(array) if array.ndim == 0 else tuple(int(i) for i in array)


def _spatial_axes(x: tf.Tensor) -> list[int]:
    return list(range(1, x.shape.rank - 1))


def _per_image(x: tf.Tensor, reduce: Callable = tf.reduce_mean) -> tf.Tensor:
    return reduce(x, list(range(1, x.shape.rank)))


# -- model objectives ----------------------------------------------------------
def class_logit(index: Any) -> Objective:
    """The logit of class `index` (one int, or one per image)."""
    index = _check_index(index)
    return Objective(
        lambda ctx: _pick(ctx.logits, index, "the logits"),
        f"class_logit({index})",
        needs_logits=True,
        config=_config("class_logit", index=_json(index)),
    )


def class_probability(index: Any) -> Objective:
    """The softmax probability of class `index` (one int, or one per image)."""
    index = _check_index(index)
    return Objective(
        lambda ctx: _pick(tf.nn.softmax(ctx.logits, -1), index, "the logits"),
        f"class_probability({index})",
        needs_logits=True,
        config=_config("class_probability", index=_json(index)),
    )


def channel(layer: Any, index: Any, reduce: str = "mean") -> Objective:
    """Channel `index` of `layer`, reduced over space by `"mean"` or `"max"`.

    A dense layer `(B, K)` gives unit `index` itself. `index` may give one
    channel per image.
    """
    index = _check_index(index)
    check_one_of(reduce, ("mean", "max"), "reduce")
    reducer = tf.reduce_mean if reduce == "mean" else tf.reduce_max

    def fn(ctx: Context) -> tf.Tensor:
        x = ctx.layer(layer)
        if x.shape.rank > 2:
            x = reducer(x, _spatial_axes(x))
        return _pick(x, index, f"layer {layer_key(layer)!r}")

    return Objective(
        fn,
        f"channel({layer_key(layer)}, {index}, {reduce})",
        (layer,),
        config=_config(
            "channel", layer=layer_key(layer), index=_json(index), reduce=reduce
        ),
    )


def neuron(layer: Any, index: Any, position: Sequence[int] | None = None) -> Objective:
    """The unit of channel `index` at `(row, col)` of `layer` (default the
    centre, `(H // 2, W // 2)`)."""
    index = _check_index(index)
    if position is not None:
        if len(position) != 2 or any(int(p) < 0 for p in position):
            raise ValueError(
                "`position` must be (row, col), two non-negative integers. "
                f"{received('position', position)}"
            )
        position = (int(position[0]), int(position[1]))

    def fn(ctx: Context) -> tf.Tensor:
        x = ctx.layer(layer)
        if x.shape.rank != 4:
            raise ValueError(
                f"neuron() needs a spatial layer (B, H, W, C); {layer_key(layer)!r} "
                f"has shape {tuple(x.shape)}. {received('layer', layer)}"
            )
        row, col = position or (x.shape[1] // 2, x.shape[2] // 2)
        if row >= x.shape[1] or col >= x.shape[2]:
            raise ValueError(
                f"`position` is outside the {tuple(x.shape[1:3])} map of layer "
                f"{layer_key(layer)!r}. {received('position', position)}"
            )
        return _pick(x[:, row, col], index, f"layer {layer_key(layer)!r}")

    return Objective(
        fn,
        f"neuron({layer_key(layer)}, {index}, {position})",
        (layer,),
        config=_config(
            "neuron",
            layer=layer_key(layer),
            index=_json(index),
            position=None if position is None else list(position),
        ),
    )


def layer_objective(layer: Any) -> Objective:
    """DeepDream: the mean of the squared activations of `layer`, per image."""
    return Objective(
        lambda ctx: _per_image(tf.square(ctx.layer(layer))),
        f"layer({layer_key(layer)})",
        (layer,),
        config=_config("layer_objective", layer=layer_key(layer)),
    )


def direction(layer: Any, vector: Any, *, metric: str = "cosine") -> Objective:
    """Alignment of `layer`'s activations with a direction (e.g. a CAV).

    A `vector` of C values (one per channel) is compared with the activation
    vector at every position and the results are averaged over positions
    (lucid's `direction` / `direction_cossim`); a vector of `H * W * C` values
    (a CAV over flattened NHWC activations, as CAVlib's) is compared with the
    whole flattened activation. `metric="cosine"` is the cosine similarity
    (scale-free, in [-1, 1]); `"dot"` the plain dot product.

    Raises:
        ValueError: `vector` not 1-D, or a size matching neither C nor H W C.
    """
    check_one_of(metric, ("cosine", "dot"), "metric")
    vec = np.asarray(vector, np.float32).reshape(-1)
    if vec.size == 0 or not np.isfinite(vec).all():
        raise ValueError(
            f"`vector` must be finite and non-empty. {received('vector', vector)}"
        )

    def fn(ctx: Context) -> tf.Tensor:
        x = ctx.layer(layer)
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        if vec.size == x.shape[-1]:
            x = tf.reshape(x, [tf.shape(x)[0], -1, vec.size])  # (B, P, C)
        elif vec.size == flat.shape[-1]:
            x = flat[:, None]  # (B, 1, D)
        else:
            raise ValueError(
                f"`vector` has {vec.size} values; layer {layer_key(layer)!r} has "
                f"{x.shape[-1]} channels and {flat.shape[-1]} values in all. "
                f"{received('vector', vector)}"
            )
        dots = tf.reduce_sum(x * vec, -1)
        if metric == "cosine":
            norms = tf.norm(x, axis=-1) * float(np.linalg.norm(vec))
            dots = dots / tf.maximum(norms, 1e-8)
        return tf.reduce_mean(dots, -1)

    return Objective(
        fn,
        f"direction({layer_key(layer)}, {metric})",
        (layer,),
        config=_config(
            "direction", layer=layer_key(layer), vector=vec.tolist(), metric=metric
        ),
    )


def gram_similarity(features: tf.Tensor) -> tf.Tensor:
    """Cosine similarity `(B, B)` of the images' Gram matrices (lucid's
    diversity measure); `features` is `(B, ..., C)`."""
    b = tf.shape(features)[0]
    flat = tf.reshape(features, (b, -1, features.shape[-1]))
    grams = tf.matmul(flat, flat, transpose_a=True)
    grams = tf.math.l2_normalize(tf.reshape(grams, (b, -1)), -1, 1e-10)
    return tf.matmul(grams, grams, transpose_b=True)


def diversity(layer: Any) -> Objective:
    """lucid's diversity term, negated: a scalar to maximise.

    The Gram matrix of `layer`'s activations of every image is flattened and
    L2-normalised; the value is minus the sum over ordered pairs `i != j` of
    their cosine similarity, divided by B (0 for a batch of one). Add it with a
    weight: `channel(...) + 100 * diversity(layer)` (lucid: `- 1e2 *
    diversity`).

    References:
        Olah, Mordvintsev, Schubert, Feature Visualization (Diversity),
        Distill 2017.
    """

    def fn(ctx: Context) -> tf.Tensor:
        x = ctx.layer(layer)
        batch = tf.shape(x)[0]
        similarity = gram_similarity(x)
        off_diagonal = tf.reduce_sum(similarity) - tf.linalg.trace(similarity)
        return -off_diagonal / tf.cast(batch, tf.float32)

    return Objective(
        fn,
        f"diversity({layer_key(layer)})",
        (layer,),
        config=_config("diversity", layer=layer_key(layer)),
    )


def _constructors() -> dict[str, Callable[..., Objective]]:
    """`{name: constructor}` for `Objective.from_config`: this module's
    objectives and the regularisers (imported here: they import this module)."""
    from keras_interp.synthesis.regularizers import REGULARIZERS

    objectives = (
        class_logit,
        class_probability,
        channel,
        neuron,
        layer_objective,
        direction,
        diversity,
    )
    return {f.__name__: f for f in objectives + REGULARIZERS}
