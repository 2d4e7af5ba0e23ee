"""What is explained: the scores `(B, K)` whose units `indices` select.

Every method explains the first output of the (exposed) model, a `(B, K)`
tensor, and `indices` picks units of its last axis. By default that output is
the logits. A `Target` passed to `expose(outputs=...)` makes it anything else,
once, for every method alike (dnnbrain's "channel of any layer"):

- `Target()`: the logits (pre-activation, as `expose` does by default);
- `Target(activation="softmax")`: class probabilities (or `"sigmoid"`);
- `Target("block_16_project", reduce="mean")`: each channel of an
  intermediate layer reduced over space by `mean`, `max`, `l1` or `l2`, so
  `indices=[[c]]` explains channel `c`;
- `Target("block_16_project", position=(2, 3))`: the units at row 2, column 3;
- `Target(output="age")` or `Target(output=1)`: one output of a model with
  several outputs, by the name of the layer producing it (or its key in a model
  built with a dict of outputs) or by its index in `model.outputs`.

Models with several outputs: a method never picks one for the user. `expose()`
without a `Target(output=...)` (or an explicit output layer) refuses such a
model, and so does every method given the plain model (`scores`): select the
head once with `select_output(model, output)` (the same as
`expose(model, arguments=[], outputs=Target(output=...))`) for the gradient and
perturbation methods, or `expose(model, arguments=..., outputs=Target(output=
...))` for the CAM family; every method then explains the same head.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import tensorflow as tf

from keras_interp._validation import check_one_of, received

REDUCTIONS = ("mean", "max", "l1", "l2")
ACTIVATIONS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class Target:
    """The scores a method explains, as an `expose()` output.

    Args:
        layer: the layer whose output is explained (any `find_layer`
            reference); `None` for the logits layer.
        reduce: for a spatial layer `(B, H, W, C)`, how each channel is reduced
            to one score: `"mean"`, `"max"`, `"l1"` (sum of absolute values) or
            `"l2"` (square root of the sum of squares, as dnnbrain).
        position: `(row, col)`: explain the units at this spatial position
            instead of reducing (dnnbrain's `unit`).
        activation: apply `"softmax"` or `"sigmoid"` to the scores, e.g. to
            explain class probabilities rather than logits.
        output: for a model with several outputs, the one explained: its index
            in `model.outputs` or its name (the name of the layer producing it,
            or its key for a model built with a dict of outputs). The output
            layer's softmax or sigmoid is stripped as for the logits layer.
            Give `layer` or `output`, not both.

    Raises:
        ValueError: an unknown `reduce` or `activation`, `reduce` together with
            `position`, a `position` that is not two non-negative integers, or
            `layer` together with `output`.
        TypeError: an `output` that is neither an integer nor a string.

    Example:
        >>> from keras_interp.testing.models import gap_dense
        >>> model = gap_dense()  # images (8, 8, 3) -> "conv" (4 channels) -> logits
        >>> exposed = expose(model, arguments="conv", outputs=Target(
        ...     "conv", reduce="mean"))
        >>> channel_means, activations = exposed(np.ones((1, 8, 8, 3)))
        >>> channel_means.shape, activations.shape
        (TensorShape([1, 4]), TensorShape([1, 8, 8, 4]))

        One head of a model with several outputs:

        >>> face = keras.Input((8, 8, 3))
        >>> pooled = keras.layers.GlobalAveragePooling2D()(face)
        >>> two_heads = keras.Model(face, {
        ...     "age": keras.layers.Dense(1, name="age")(pooled),
        ...     "gender": keras.layers.Dense(2, name="gender")(pooled)})
        >>> head = expose(two_heads, arguments=[], outputs=Target(output="age"))
        >>> head(np.ones((1, 8, 8, 3)))[0].shape
        TensorShape([1, 1])
    """

    layer: Any = None
    reduce: str | None = None
    position: tuple[int, int] | None = None
    activation: str | None = None
    output: int | str | None = None

    def __post_init__(self) -> None:
        output = self.output
        if output is not None:
            if isinstance(output, bool) or not isinstance(
                output, (numbers.Integral, str)
            ):
                raise TypeError(
                    "`output` must be an output index or name. "
                    f"{received('output', output)}"
                )
            if self.layer is not None:
                raise ValueError(
                    "Give `layer` or `output`, not both: `output` names a model "
                    f"output, `layer` any layer. {received('output', output)}"
                )
            if not isinstance(output, str):
                object.__setattr__(self, "output", int(output))
        if self.reduce is not None:
            check_one_of(self.reduce, REDUCTIONS, "reduce")
        if self.activation is not None:
            check_one_of(self.activation, ACTIVATIONS, "activation")
        if self.position is not None:
            position = self.position
            if self.reduce is not None:
                raise ValueError(
                    "Give `reduce` or `position`, not both. "
                    f"{received('position', position)}"
                )
            if (
                not isinstance(position, (tuple, list))
                or len(position) != 2
                or not all(isinstance(p, int) and p >= 0 for p in position)
            ):
                raise ValueError(
                    "`position` must be (row, col), two non-negative integers. "
                    f"{received('position', position)}"
                )
            object.__setattr__(self, "position", tuple(position))

    def check_shape(self, shape: tuple | None, name: str) -> None:
        """Raise a ValueError if a layer output of `shape` cannot be scored."""
        if shape is None:
            return
        spatial = len(shape) > 2
        if spatial and self.reduce is None and self.position is None:
            raise ValueError(
                f"Layer {name!r} outputs a spatial map of shape {shape}: give "
                "Target(reduce=...) or Target(position=(row, col)) to turn it "
                f"into one score per channel. {received('layer', name)}"
            )
        if self.position is not None:
            if not spatial:
                raise ValueError(
                    f"`position` needs a spatial layer; {name!r} outputs "
                    f"{shape}. {received('position', self.position)}"
                )
            if any(
                size is not None and p >= size
                for p, size in zip(self.position, shape[1:3])
            ):
                raise ValueError(
                    f"`position` is outside layer {name!r}'s map of shape "
                    f"{shape}. {received('position', self.position)}"
                )

    def __call__(self, outputs: tf.Tensor) -> tf.Tensor:
        """Turn a layer output into scores `(B, K)`."""
        x = tf.convert_to_tensor(outputs)
        if self.position is not None:
            row, col = self.position
            x = x[:, row, col]
        elif self.reduce is not None and x.shape.rank > 2:
            axes = list(range(1, x.shape.rank - 1))
            if self.reduce == "mean":
                x = tf.reduce_mean(x, axes)
            elif self.reduce == "max":
                x = tf.reduce_max(x, axes)
            elif self.reduce == "l1":
                x = tf.reduce_sum(tf.abs(x), axes)
            else:
                x = tf.sqrt(tf.reduce_sum(tf.square(x), axes))
        if self.activation == "softmax":
            x = tf.nn.softmax(x, axis=-1)
        elif self.activation == "sigmoid":
            x = tf.sigmoid(x)
        return x
