"""The activation of one channel (or one unit) of a layer, for batches of images.

Shared by the masked and minimal image analyses: dnnbrain's
`DNN.compute_activation(images, mask).pool(criterion)` for one channel, on
channels-last Keras models, with channels numbered from 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keras_interp._validation import (
    check_callable,
    check_one_of,
    check_positive_int,
    received,
    renamed_argument,
)
from keras_interp.analysis._batching import channel_maps, exposed_layer, run_step
from keras_interp.analysis.receptive_field import layer_path
from keras_interp.images import load_image, load_images
from keras_interp.inspection import expose, find_layer
from keras_interp.inspection.graph import output_shape

#: How a channel map is reduced to one number (dnnbrain's `array_statistic`),
#: in the library's lowercase vocabulary (as `Target(reduce=...)`).
CRITERIA = ("max", "mean", "median", "l1", "l2")

#: dnnbrain's spellings, accepted as they are (a reference API, no warning).
DNNBRAIN_CRITERIA = {"L1": "l1", "L2": "l2"}


def check_criterion(criterion: Any, arg: str = "activation_criterion") -> str:
    """Return `criterion` as one of `CRITERIA` (dnnbrain's "L1"/"L2" accepted)."""
    if isinstance(criterion, str) and criterion in DNNBRAIN_CRITERIA:
        criterion = DNNBRAIN_CRITERIA[criterion]
    return check_one_of(criterion, CRITERIA, arg)


def reduce_maps(maps: np.ndarray, criterion: str) -> np.ndarray:
    """Reduce `(N, ...)` maps to `(N,)` by `criterion` over all non-batch axes.

    `"l1"` is the sum of absolute values and `"l2"` the square root of the sum
    of squares (element-wise norms, as dnnbrain's `array_statistic`).
    """
    criterion = check_criterion(criterion)
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    if criterion == "max":
        values = flat.max(axis=1)
    elif criterion == "mean":
        values = flat.mean(axis=1)
    elif criterion == "median":
        values = np.median(flat, axis=1)
    elif criterion == "l1":
        values = np.abs(flat).sum(axis=1)
    else:
        values = np.sqrt(np.square(flat).sum(axis=1))
    return values.astype(np.float32)


def as_image(image: Any, arg: str = "image") -> np.ndarray:
    """One image as float32 `(H, W, 3)` in [0, 1] (any form `load_image` takes)."""
    array = getattr(image, "shape", None)
    if array is not None and len(array) == 4:
        raise ValueError(
            f"`{arg}` must be one image (H, W, 3), not a batch; call the function "
            f"once per image. {received(arg, image)}"
        )
    return load_image(image)


def _first(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


class ChannelActivation:
    """The map of channel `channel` of `layer`, or the value of one of its units.

    Exposes `layer` (`expose(model, arguments=layer, outputs=[])`, one exposed
    model per model and layer) and runs it through the engine on batches of
    float images in [0, 1], passed through `preprocessing` first.

    Args:
        model: a functional or Sequential Keras model (nested layers allowed).
        layer: the layer, any `find_layer` reference.
        channel: the channel, numbered from 0 (dnnbrain numbers from 1).
        unit: `(row, col)` of one unit of the channel map, or `None` for the
            whole map.
        preprocessing: a callable mapping a float32 batch `(N, H, W, 3)` in [0, 1]
            to the model's input range (e.g. `lambda x: x * 2 - 1`), or `None`
            for the identity.
        batch_size: images per forward pass.

    Raises:
        ValueError: unknown layer (with the closest names), channel out of
            range, `unit` malformed or outside the map.
        TypeError: `channel` not an integer, `preprocessing` not callable.
    """

    def __init__(
        self,
        model: Any,
        layer: Any,
        channel: int,
        *,
        unit: tuple[int, int] | None = None,
        preprocessing: Callable[[np.ndarray], Any] | None = None,
        batch_size: int = 32,
    ) -> None:
        self.layer = find_layer(model, layer, arg="layer")
        self.channel = check_positive_int(channel, "channel", allow_zero=True)
        self.preprocessing = (
            None
            if preprocessing is None
            else check_callable(preprocessing, "preprocessing")
        )
        self.batch_size = check_positive_int(batch_size, "batch_size")
        shape = output_shape(self.layer)
        if shape is not None and shape[-1] is not None:
            self._check_channel(int(shape[-1]))
        self.unit = self._check_unit(unit, shape)
        self._channels = None if shape is None else shape[-1]
        layer_ref = self.layer
        self._exposed = exposed_layer(
            model,
            ("channel", layer_path(model, layer_ref)),
            lambda source: expose(source, arguments=[layer_ref], outputs=[]),
        )

    def _check_channel(self, channels: int) -> None:
        if self.channel >= channels:
            raise ValueError(
                f"`channel` must be in [0, {channels}) for layer "
                f"{self.layer.name!r}, which has {channels} channels (channels "
                f"are numbered from 0). {received('channel', self.channel)}"
            )

    def _check_unit(self, unit: Any, shape: tuple | None) -> tuple | None:
        if unit is None:
            return None
        if (
            not isinstance(unit, (tuple, list))
            or len(unit) != 2
            or not all(
                isinstance(u, (int, np.integer)) and not isinstance(u, bool)
                for u in unit
            )
        ):
            raise ValueError(
                f"`unit` must be (row, col), two integers. {received('unit', unit)}"
            )
        unit = tuple(int(u) for u in unit)
        if shape is not None:
            self._check_unit_inside(unit, shape)
        return unit

    def _check_unit_inside(self, unit: tuple, shape: tuple) -> None:
        if len(shape) != 4:
            raise ValueError(
                f"`unit` needs a spatial layer; {self.layer.name!r} outputs "
                f"{shape}. {received('unit', unit)}"
            )
        if any(
            u < 0 or (size is not None and u >= size)
            for u, size in zip(unit, shape[1:3])
        ):
            raise ValueError(
                f"`unit` is outside the {tuple(shape[1:3])} map of layer "
                f"{self.layer.name!r} (rows and columns are numbered from 0). "
                f"{received('unit', unit)}"
            )

    def maps(self, images: np.ndarray) -> np.ndarray:
        """The channel maps `(N, H', W')` (or `(N,)` for a dense layer, or the
        unit values `(N,)` when `unit` is set) of float images `(N, H, W, 3)`.

        The engine runs the forward passes (`explain`, `batch_size` images
        each), compiled once per model and layer: other channels, units and
        batch sizes reuse the trace. `preprocessing` is applied to the images
        first, all at once.
        """
        images = np.asarray(images, np.float32)
        if self.preprocessing is not None:
            images = np.asarray(self.preprocessing(images), np.float32)
        if self._channels is None:  # a layer called several times: probe once
            self._channels = int(_first(self._exposed(images[:1])).shape[-1])
        self._check_channel(int(self._channels))
        maps = run_step(
            channel_maps,
            self._exposed,
            images,
            np.full((len(images), 1), self.channel, np.int32),
            batch_size=self.batch_size,
        )[..., 0]
        if self.unit is None:
            return maps
        self._check_unit_inside(self.unit, (*maps.shape, 1))
        return maps[:, self.unit[0], self.unit[1]]

    def __call__(self, images: np.ndarray, criterion: str = "mean") -> np.ndarray:
        """The activations `(N,)` of `images`, each map reduced by `criterion`
        (ignored when `unit` is set or the layer is dense)."""
        maps = self.maps(images)
        return reduce_maps(maps, criterion) if maps.ndim > 1 else maps


def channel_activation(
    model: Any,
    layer: Any,
    channel: int,
    images: Any,
    *,
    unit: tuple[int, int] | None = None,
    criterion: str = "mean",
    preprocessing: Callable[[np.ndarray], Any] | None = None,
    batch_size: int = 32,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> np.ndarray:
    """The activation of a channel (or unit) of a layer for a batch of images.

    The channel map of each image is reduced to one number by `criterion`:
    `"max"`, `"mean"`, `"median"`, `"l1"` (sum of absolute values) or `"l2"`
    (square root of the sum of squares), dnnbrain's pooling criteria (its
    spellings `"L1"` and `"L2"` are accepted too). With
    `unit=(row, col)` the value of that unit is returned instead.

    Args:
        model: a functional or Sequential Keras model.
        layer: the layer, any `find_layer` reference (name, nested path, ...).
        channel: the channel, numbered from 0 like every Keras API (dnnbrain
            numbers channels from 1).
        images: float images `(N, H, W, 3)` in [0, 1], or a list of images in
            any form `load_image` accepts.
        unit: `(row, col)` of one unit of the channel map, from 0.
        criterion: how the map is reduced, one of `CRITERIA`.
        preprocessing: maps a float batch in [0, 1] to the model's input range;
            `None` feeds the images unchanged.
        batch_size: images per forward pass.
        preprocess: deprecated name of `preprocessing` (warns).

    Returns:
        float32 array `(N,)`.

    Raises:
        ValueError: unknown layer (with the closest names), channel or unit
            outside the layer's output, unknown criterion, images that are not
            images.
        TypeError: `images` neither a batch nor a list of images.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 3)),
        ...                           keras.layers.Conv2D(4, 3, name="conv")])
        >>> channel_activation(model, "conv", 2, np.zeros((5, 8, 8, 3))).shape
        (5,)
    """
    preprocessing = renamed_argument(
        preprocessing, preprocess, "preprocessing", "preprocess"
    )
    criterion = check_criterion(criterion, "criterion")
    batch = load_images(images)
    probe = ChannelActivation(
        model,
        layer,
        channel,
        unit=unit,
        preprocessing=preprocessing,
        batch_size=batch_size,
    )
    return probe(batch, criterion)
