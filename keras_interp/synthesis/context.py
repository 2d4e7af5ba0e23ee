"""What an objective reads during one optimisation step: the `Context`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import received


def layer_key(ref: Any) -> str:
    """The key under which a layer reference's activations are stored:
    a path string (`("outer", "inner")` becomes `"outer/inner"`)."""
    if isinstance(ref, tuple):
        return "/".join(map(str, ref))
    if isinstance(ref, str):
        return ref
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        return str(int(ref))
    name = getattr(ref, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(
        "A layer reference must be a name, a path 'outer/inner', a tuple of "
        f"names, an index or a layer. {received('layer', ref)}"
    )


class Context:
    """What an objective can read during one optimisation step.

    Args:
        images: the parameterisation's output before transforms, `(B, H, W,
            C)` in [0, 1] (alpha last if any); regularisers read it.
        inputs: the images after transforms (and alpha compositing), as fed
            to the model but before the input range map, `(B, H', W', C')`.
        layers: `{layer_key(ref): activations}` of the exposed layers.
        logits: the model's logits `(B, K)`, or None if not computed.
        step: the optimisation step (an int or scalar tensor), or None.
        alpha: whether the last channel of `images` is an alpha channel, for
            any number of colour channels (`render` passes `param.alpha`).
            None guesses from the channel count: alpha when there are 4 (RGBA).

    Raises:
        ValueError: `alpha=True` but `images` has fewer than 2 channels.

    Example:
        >>> from keras_interp.synthesis import channel
        >>> x = tf.fill((1, 4, 4, 3), 0.5)
        >>> a = tf.reshape(tf.range(32.0), (1, 4, 4, 2))  # channel 0: 0, 2, ..., 30
        >>> ctx = Context(images=x, inputs=x, layers={"conv": a})
        >>> channel("conv", 0)(ctx).numpy()  # the channel's mean, per image
        array([15.], dtype=float32)
    """

    def __init__(
        self,
        images: Any,
        inputs: Any = None,
        layers: Mapping[Any, Any] | None = None,
        logits: Any = None,
        step: Any = None,
        *,
        alpha: bool | None = None,
    ) -> None:
        self.images = tf.convert_to_tensor(images, tf.float32)
        channels = self.images.shape[-1]
        self.alpha = channels == 4 if alpha is None else bool(alpha)
        if self.alpha and channels is not None and channels < 2:
            raise ValueError(
                "With an alpha channel `images` needs at least one colour "
                f"channel too. Received: images.shape={tuple(self.images.shape)}"
            )
        self.inputs = self.images if inputs is None else tf.convert_to_tensor(inputs)
        self._layers = {layer_key(k): v for k, v in (layers or {}).items()}
        self._logits = logits
        self.step = step

    def layer(self, ref: Any) -> tf.Tensor:
        """The activations of layer `ref`, float32."""
        key = layer_key(ref)
        if key not in self._layers:
            raise ValueError(
                f"Layer {key!r} was not computed; this context has "
                f"{sorted(self._layers)}. List it in `Objective.layers`. "
                f"{received('layer', ref)}"
            )
        return tf.cast(self._layers[key], tf.float32)

    @property
    def logits(self) -> tf.Tensor:
        """The model's logits `(B, K)`."""
        if self._logits is None:
            raise ValueError(
                "The logits were not computed: the objective must set "
                "`needs_logits=True`. Received: logits=None"
            )
        return tf.cast(self._logits, tf.float32)

    @property
    def batch_size(self) -> Any:
        static = self.images.shape[0]
        return static if static is not None else tf.shape(self.images)[0]
