"""Theoretical receptive fields of any Keras graph, nested models included.

Convention (dnnbrain's, from Araujo et al.): input pixel `i` spans the interval
`[i, i + 1)` and has its centre at `i + 0.5`, so the input itself has `size =
1`, `jump = 1`, `start = 0.5`. Every layer then maps, per spatial axis,

    k_eff     = d (k - 1) + 1
    j_out     = j_in s
    r_out     = r_in + (k_eff - 1) j_in
    start_out = start_in + ((k_eff - 1) / 2 - p_left) j_in

(kernel `k`, stride `s`, dilation `d`, `p_left` the zeros added before the
first input unit, computed as TensorFlow does for `padding="same"`: `p_left =
max((n_out - 1) s + k_eff - n_in, 0) // 2`). Unit `u` of a layer sees the input
interval `[start + u j - r / 2, start + u j + r / 2)`, whose ends are always
integers: `image[h0:h1, w0:w1]` is exactly the region `find_region` returns.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

from keras_interp._validation import received
from keras_interp.analysis._rf_geometry import Axis, State, apply_layer
from keras_interp.inspection.graph import find_layer, iter_layers, layer_dependencies


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """The theoretical receptive field of one layer's units.

    All tuples hold one value per spatial axis, `(height, width)` for images.

    Attributes:
        layer: the layer's path (`"outer/inner"` inside nested models).
        size: the field's extent `r` in input pixels, not clipped to the image
            (it exceeds the image for deep layers).
        jump: `j`, the input distance between neighbouring units (the product
            of the strides).
        start: the input coordinate of the centre of unit 0's field, pixel `i`
            having its centre at `i + 0.5` (so the input's own start is 0.5).
        map_size: the layer's feature map size; `(1, 1)` for layers without
            spatial axes (Flatten, global pooling, Dense after them).
        input_size: the image size the field was computed for.
    """

    layer: str
    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[float, ...]
    map_size: tuple[int, ...]
    input_size: tuple[int, ...]

    def find_region(self, unit: Any, *, clip: bool = True) -> list[tuple[int, int]]:
        """The input region a unit sees, dnnbrain's `find_region`.

        Args:
            unit: the unit's position in the feature map, `(row, col)` for
                images (an int for 1-D maps), counted from 0.
            clip: clip the region to the image `[0, H] x [0, W]` (dnnbrain's
                behaviour). With `False`, the region may extend beyond it.

        Returns:
            `[(h0, h1), (w0, w1)]`: integer pixel edges, so that
            `image[h0:h1, w0:w1]` is the region.

        Raises:
            ValueError: `unit` is not one index per spatial axis, or lies
                outside the feature map.

        Example:
            >>> model = keras.Sequential([keras.Input((224, 224, 3)),
            ...     keras.layers.ZeroPadding2D(2),
            ...     keras.layers.Conv2D(8, 11, strides=4, name="conv1")])
            >>> field = theoretical_receptive_field(model, "conv1")
            >>> field.find_region((0, 0)), field.find_region((0, 0), clip=False)
            ([(0, 9), (0, 9)], [(-2, 9), (-2, 9)])
        """
        unit = (unit,) if _is_int(unit) else unit
        if (
            not isinstance(unit, (tuple, list))
            or len(unit) != len(self.size)
            or not all(_is_int(u) for u in unit)
        ):
            raise ValueError(
                f"`unit` must be {len(self.size)} integer(s), one per spatial axis "
                f"of layer {self.layer!r}. {received('unit', unit)}"
            )
        if any(not 0 <= u < n for u, n in zip(unit, self.map_size)):
            raise ValueError(
                f"`unit` is outside the feature map of layer {self.layer!r}, of "
                f"size {self.map_size}. {received('unit', unit)}"
            )
        region = []
        unit = tuple(int(u) for u in unit)
        geometry = zip(unit, self.size, self.jump, self.start, self.input_size)
        for u, r, j, s, n in geometry:
            low = round(s + u * j - r / 2)
            high = low + r
            if clip:
                low, high = min(max(low, 0), n), max(min(high, n), 0)
            region.append((low, high))
        return region


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def theoretical_receptive_field(
    model: Any,
    layer: Any,
    *,
    input_shape: Sequence[int] | None = None,
    pass_through: Sequence[Any] = (),
) -> ReceptiveField:
    """The theoretical receptive field (size, jump, start) of a layer's units.

    Works on any functional or Sequential graph, branching (Inception,
    residual) and nested models included, by walking the layers that feed
    `layer`. Layers are handled as follows:

    - convolutions (`Conv1D/2D/3D`, `DepthwiseConv`, `SeparableConv`) and
      pooling (`MaxPooling`, `AveragePooling`): kernel, stride, dilation and
      padding `"valid"`, `"same"` (TensorFlow's offsets) or `"causal"`;
    - `ZeroPadding` moves the start back, `Cropping` forward;
    - position-wise layers (normalisation, activations, dropout, Dense on a
      map, ...) pass the field through;
    - merges (`Add`, `Multiply`, `Concatenate`, ...) take the union of their
      inputs' fields: the smallest field containing every branch's. A branch
      reduced to one position (squeeze-and-excitation) is broadcast: every unit
      then sees all of that branch's field;
    - `Flatten`, `Reshape`, global pooling: one unit seeing the union of all
      units' fields, i.e. the whole input (`map_size` all ones); every later
      layer keeps it;
    - transposed convolutions, `UpSampling`, `Resizing`: a `ValueError`, as
      the field of their units is not an affine function of the unit's index.

    Unlike dnnbrain, which only knows AlexNet and VGG, no model table is used.
    Layers with `data_format="channels_first"` are not supported; a layer
    called several times (shared weights) is taken at its first call.

    Args:
        model: a functional or Sequential Keras model (or tf_keras) with image
            inputs `(B, H, W, C)` (or `(B, L, C)`, `(B, D, H, W, C)`).
        layer: the layer (any `find_layer` reference: name, path `"outer/inner"`,
            index, layer object).
        input_shape: the input's spatial size `(H, W)`; defaults to the model's.
            Required when the model accepts any size, since `"same"` padding
            offsets depend on it.
        pass_through: names, paths, classes or class names of other layers to
            treat as position-wise, e.g. a `Lambda` applying a function per
            pixel.

    Returns:
        A `ReceptiveField`; its `find_region((row, col))` gives a unit's region.

    Raises:
        ValueError: an unknown layer (with the closest names), a model without
            a spatial image input or without a known input size, an
            unsupported layer feeding `layer`, or merged branches with
            different strides.
        TypeError: `model` is not a Keras model.

    Example:
        >>> model = keras.Sequential([keras.Input((32, 32, 3)),
        ...     keras.layers.Conv2D(4, 3, name="c1"),
        ...     keras.layers.MaxPooling2D(name="p1")])
        >>> theoretical_receptive_field(model, "p1").size
        (4, 4)

    References:
        Araujo, Norris and Sim, Computing Receptive Fields of Convolutional
        Neural Networks, Distill 2019. doi:10.23915/distill.00021.
        Chen et al., DNNBrain: a unifying toolbox for mapping deep neural
        networks and brains, Frontiers in Computational Neuroscience 2020.
    """
    target = layer_path(model, layer)
    return receptive_fields(
        model, input_shape=input_shape, pass_through=pass_through, layers=[target]
    )[target]


def receptive_fields(
    model: Any,
    *,
    input_shape: Sequence[int] | None = None,
    pass_through: Sequence[Any] = (),
    layers: Sequence[Any] | None = None,
) -> dict[str, ReceptiveField]:
    """The theoretical receptive fields of many layers (dnnbrain's table).

    Args:
        model: as for `theoretical_receptive_field`.
        input_shape: as for `theoretical_receptive_field`.
        pass_through: as for `theoretical_receptive_field`.
        layers: the layers wanted; defaults to every layer of the model.

    Returns:
        `{path: ReceptiveField}` in topological order, for the wanted layers
        and every layer feeding them.

    Raises:
        ValueError, TypeError: as for `theoretical_receptive_field`.

    Example:
        >>> model = keras.Sequential([keras.Input((32, 32, 3)),
        ...     keras.layers.Conv2D(4, 3, name="c1"),
        ...     keras.layers.MaxPooling2D(name="p1"),
        ...     keras.layers.Conv2D(4, 3, name="c2")])
        >>> for path, field in receptive_fields(model).items():
        ...     print(path, field.size, field.jump)
        c1 (3, 3) (1, 1)
        p1 (4, 4) (2, 2)
        c2 (8, 8) (2, 2)
    """
    dependencies = layer_dependencies(model)
    objects = dict(iter_layers(model))
    roots = [path for path, sources in dependencies if not sources]
    sizes = dict(zip(roots, _input_sizes(model, input_shape)))
    wanted = {path for path, _ in dependencies}
    if layers is not None:
        wanted = _ancestors(dependencies, [layer_path(model, ref) for ref in layers])
    extra = {getattr(ref, "__name__", ref) for ref in pass_through}
    states: dict[str, State] = {}
    fields: dict[str, ReceptiveField] = {}
    for path, sources in dependencies:
        if path not in wanted:
            continue
        if not sources:
            if sizes.get(path) is None:
                raise ValueError(_no_input_message(model))
            axes = tuple(Axis(n, 1, 0, 1) for n in sizes[path])
            states[path] = State(axes, path)
        else:
            inputs = [states[source] for source in sources]
            states[path] = apply_layer(objects.get(path), path, inputs, extra)
        if path in objects:
            fields[path] = _field(path, states[path], states)
    return fields


def layer_path(model: Any, layer: Any) -> str:
    """The path `"outer/inner"` of a layer given by any `find_layer` reference."""
    found = find_layer(model, layer, arg="layer")
    return next(path for path, other in iter_layers(model) if other is found)


def _ancestors(dependencies: list, targets: list[str]) -> set[str]:
    feeding = dict(dependencies)
    seen, todo = set(), list(targets)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(feeding.get(path, ()))
    return seen


def _no_input_message(model: Any) -> str:
    return (
        f"Model {getattr(model, 'name', model)!r} has an input that is not an "
        "image: receptive fields need inputs (B, H, W, C) (or (B, L, C), "
        f"(B, D, H, W, C)). {received('model', getattr(model, 'name', model))}"
    )


def _input_sizes(model: Any, input_shape: Sequence[int] | None) -> list:
    """The spatial size of each model input (its shape without batch and
    channels), None for inputs without spatial axes."""
    sizes = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape)
        if len(shape) < 3:
            sizes.append(None)
            continue
        spatial = shape[1:-1]
        if input_shape is not None:
            given = tuple(input_shape)
            if len(given) != len(spatial) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in given
            ):
                raise ValueError(
                    f"`input_shape` must be {len(spatial)} positive integers, the "
                    f"input's spatial size. {received('input_shape', input_shape)}"
                )
            spatial = given
        if any(n is None for n in spatial):
            raise ValueError(
                f"Model {model.name!r} accepts inputs of any size {shape}: give "
                "the image size, e.g. input_shape=(224, 224), since 'same' "
                f"padding depends on it. {received('input_shape', input_shape)}"
            )
        sizes.append(tuple(int(n) for n in spatial))
    return sizes


def _field(path: str, state: State, states: dict) -> ReceptiveField:
    origin = states[state.origin].axes
    return ReceptiveField(
        layer=path,
        size=tuple(a.high - a.low for a in state.axes),
        jump=tuple(a.jump for a in state.axes),
        start=tuple((a.low + a.high) / 2 for a in state.axes),
        map_size=tuple(1 if state.whole else a.n for a in state.axes),
        input_size=tuple(a.n for a in origin),
    )
