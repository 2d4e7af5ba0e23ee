"""Incremental occlusion: the scores `occlusion` computes, recomputing only what
each window changes (Nakandala et al., SIGMOD 2019), and an approximate
coarse-to-fine variant.

An occluded copy differs from the clean image only inside the window, so a
layer's output differs only inside the window's projective field, a region that
grows by the kernel and shrinks by the stride layer after layer. The clean pass
runs once and keeps every layer's output; each batch of window positions then
recomputes, per layer, only a fixed-size patch around the changed region, the
rest of the layer's input coming from the clean pass. From the first layer
whose patch covers its whole map, or whose kind has no patch rule (Dense,
global pooling, Flatten...), the copies run in full. Patch sizes and positions
are planned with NumPy from the static shapes, so the loop traces once with
`tf.function` (and XLA), and the maps equal plain occlusion's up to float32
round-off (convolutions summed over a crop instead of the whole map).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_positive_int, received
from keras_interp.inspection.expose import exposed_layers, is_exposed
from keras_interp.inspection.graph import has_graph, run_graph
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import channels_last, chunked, size
from keras_interp.methods.perturbation import (
    _check_occluder,
    _check_pair,
    occlusion,
    spread_windows,
)

LOG = logging.getLogger(__name__)

_ELEMENTWISE = frozenset(
    "Activation ReLU LeakyReLU ELU ThresholdedReLU BatchNormalization Dropout "
    "SpatialDropout2D GaussianNoise GaussianDropout AlphaDropout "
    "ActivityRegularization Identity".split()
)
_MERGES = frozenset("Add Subtract Multiply Average Maximum Minimum Concatenate".split())
_CONVS = frozenset(("Conv2D", "DepthwiseConv2D", "SeparableConv2D"))
_POOLS = frozenset(("MaxPooling2D", "AveragePooling2D"))


@dataclasses.dataclass(frozen=True)
class _Span:
    """One spatial axis of a map, over the window positions along that axis:
    rows (or columns) `[lo[p], hi[p])` change for position `p` (none when
    `hi <= lo`); the patch recomputed is `[start[p], start[p] + n)`."""

    size: int
    lo: np.ndarray
    hi: np.ndarray

    @property
    def n(self) -> int:
        return int(min(self.size, max(1, int((self.hi - self.lo).max()))))

    @property
    def start(self) -> np.ndarray:
        return np.clip(self.lo, 0, self.size - self.n)


def _window_span(span: _Span, out: int, kernel: int, stride: int, pad: int) -> _Span:
    """The outputs of a sliding window (`kernel`, `stride`, `pad` before) that
    read a changed input."""
    lo = np.clip(-(-(span.lo + pad - kernel + 1) // stride), 0, out)
    hi = np.clip((span.hi - 1 + pad) // stride + 1, 0, out)
    return _Span(out, lo, np.where((span.hi <= span.lo) | (hi < lo), lo, hi))


def _union(spans: list[_Span]) -> _Span:
    lo = np.min([np.where(s.hi > s.lo, s.lo, s.size) for s in spans], axis=0)
    hi = np.max([np.where(s.hi > s.lo, s.hi, 0) for s in spans], axis=0)
    return _Span(spans[0].size, np.minimum(lo, hi), hi)


@dataclasses.dataclass
class _Value:
    """A map in patch mode: the clean map `(B, H, W, C)`, its spans, and (in the
    occluded pass) the patch `(k, n_rows, n_cols, C)`."""

    clean: Any
    rows: _Span
    cols: _Span
    data: Any = None


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(int(v) for v in value)


def _rule(layer: Any) -> str | None:
    """How a layer's patch is computed, or None (unsupported: run it in full)."""
    name = type(layer).__name__
    keras_layer = "layers" in type(layer).__module__
    if not keras_layer or getattr(layer, "data_format", None) == "channels_first":
        return None
    if name in _ELEMENTWISE:
        return (
            "elementwise" if getattr(layer, "axis", -1) in (-1, 3, [-1], [3]) else None
        )
    if name in _MERGES:
        return "merge" if getattr(layer, "axis", -1) in (-1, 3) else None
    if name in _CONVS:
        return "window" if getattr(layer, "groups", 1) == 1 else None
    return "window" if name in _POOLS or name == "ZeroPadding2D" else None


def _windowing(layer: Any, in_hw: tuple, out_hw: tuple) -> list[tuple[int, ...]]:
    """Per axis `(kernel, stride, pad_before, pad_after)` of a window layer."""
    name = type(layer).__name__
    if name == "ZeroPadding2D":
        return [(1, 1, *_pair(p)) for p in layer.padding]
    if name in _POOLS:
        kernel, strides, dilation = layer.pool_size, layer.strides, (1, 1)
    else:
        kernel, strides, dilation = (
            layer.kernel_size,
            layer.strides,
            layer.dilation_rate,
        )
    axes = []
    for k, s, d, n, out in zip(
        _pair(kernel), _pair(strides), _pair(dilation), in_hw, out_hw
    ):
        k = (k - 1) * d + 1
        total = max((out - 1) * s + k - n, 0) if layer.padding == "same" else 0
        axes.append((k, s, total // 2, total - total // 2))
    return axes


def _window_op(layer: Any, geometry: list, counts: tuple) -> Any:
    """`op(crop, rows, cols) -> patch`: the layer as a VALID op on a crop of its
    padded input; `rows`/`cols` `(k, n)` are output indices (for average
    pooling with padding "same", which divides by the unpadded count)."""
    name = type(layer).__name__
    strides = [1, geometry[0][1], geometry[1][1], 1]
    if name == "ZeroPadding2D":
        return lambda crop, rows, cols: crop
    if name in _POOLS:
        ksize = [1, geometry[0][0], geometry[1][0], 1]
        if name == "MaxPooling2D":
            return lambda crop, rows, cols: tf.nn.max_pool2d(
                crop, ksize, strides, "VALID"
            )

        def average(crop, rows, cols):
            out = tf.nn.avg_pool2d(crop, ksize, strides, "VALID")
            if counts is None:
                return out
            area = tf.cast(ksize[1] * ksize[2], out.dtype)
            count = (
                tf.gather(counts[0], rows)[:, :, None]
                * tf.gather(counts[1], cols)[:, None, :]
            )
            return out * area / tf.cast(count, out.dtype)[..., None]

        return average
    dilations = list(_pair(layer.dilation_rate))

    def conv(crop, rows, cols):
        cast = lambda w: tf.cast(w, crop.dtype)  # noqa: E731
        if name == "Conv2D":
            out = tf.nn.convolution(
                crop, cast(layer.kernel), strides[1:3], "VALID", dilations=dilations
            )
        elif name == "DepthwiseConv2D":
            kernel = getattr(layer, "depthwise_kernel", None) or layer.kernel
            out = tf.nn.depthwise_conv2d(
                crop, cast(kernel), strides, "VALID", dilations=dilations
            )
        else:
            out = tf.nn.separable_conv2d(
                crop,
                cast(layer.depthwise_kernel),
                cast(layer.pointwise_kernel),
                strides,
                "VALID",
                dilations=dilations,
            )
        if layer.use_bias:
            out = out + cast(layer.bias)
        return layer.activation(out) if layer.activation is not None else out

    return conv


class _Planner:
    """Runs a model twice through `run_graph`'s override: once on the clean
    images (keeping every map and planning the patches), then, per batch of
    windows, on the patches (replaying the plan)."""

    def __init__(self, model: Any, full_fraction: float) -> None:
        self.model, self.full_fraction = model, full_fraction
        first = exposed_layers(model)[:1] if is_exposed(model) else []
        self.outputs = {id(layer) for layer in first}
        self.steps: dict[tuple[int, int], dict] = {}
        self.plan: list[dict] = []
        self.dependent: dict[int, Any] = {}  # id -> full-mode tensor (kept alive)
        self.context: dict[str, Any] = {}

    # ---------------------------------------------------------------- running
    def run(self, value: Any, override: Any) -> Any:
        self.calls: dict[int, int] = {}
        self.dependent = {}
        if is_exposed(self.model):
            outputs = self.model.run(value, override=override, training=False)
        else:
            outputs, _ = run_graph(self.model, value, override=override, training=False)
        first = outputs[0]
        return first.clean if isinstance(first, _Value) else first

    def _key(self, layer: Any) -> tuple[int, int]:
        count = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = count + 1
        return id(layer), count

    def _kinds(self, args: tuple) -> list[str]:
        flat = list(args[0]) if isinstance(args[0], (list, tuple)) else list(args)
        return [
            "patch"
            if isinstance(a, _Value)
            else "full"
            if id(a) in self.dependent
            else "const"
            for a in flat
        ]

    def _full(self, tensor: Any) -> Any:
        self.dependent[id(tensor)] = tensor
        return tensor

    # ------------------------------------------------------------ clean pass
    def clean(self, layer: Any, args: tuple, kwargs: dict) -> Any:
        key, kinds = self._key(layer), self._kinds(args)
        nested = isinstance(args[0], (list, tuple))
        flat = list(args[0]) if nested else list(args)
        plain = [a.clean if isinstance(a, _Value) else a for a in flat]
        out = layer(plain, **kwargs) if nested else layer(*plain, **kwargs)
        step = {"kinds": kinds, "clean": out, "nested": nested, "rule": "full"}
        self.steps[key] = step
        if "patch" not in kinds and "full" not in kinds:
            step["rule"] = "const"  # does not depend on the image: reuse it
            return out
        rule = _rule(layer)
        record = {"layer": layer.name, "kind": type(layer).__name__}
        record.update(_macs(layer, plain, out))
        if "full" in kinds:
            self.plan.append({**record, "mode": "full", "reason": "input in full"})
            return self._full(out)
        if rule is None or out.shape.rank != 4 or id(layer) in self.outputs:
            self.plan.append({**record, "mode": "full", "reason": "no patch rule"})
            return self._full(out)
        out_hw = tuple(int(d) for d in out.shape[1:3])
        values = [a for a in flat if isinstance(a, _Value)]
        if rule == "window":
            (value,) = values
            in_hw = (value.rows.size, value.cols.size)
            geometry = _windowing(layer, in_hw, out_hw)
            spans = [
                _window_span(s, o, k, st, pb)
                for s, o, (k, st, pb, _) in zip(
                    (value.rows, value.cols), out_hw, geometry
                )
            ]
            pad_value = -np.inf if type(layer).__name__ == "MaxPooling2D" else 0.0
            pads = [[0, 0], list(geometry[0][2:]), list(geometry[1][2:]), [0, 0]]
            step["padded"] = tf.pad(value.clean, pads, constant_values=pad_value)
            step["geometry"] = geometry
            counts = None
            if type(layer).__name__ == "AveragePooling2D" and layer.padding == "same":
                counts = tuple(
                    tf.constant(
                        np.minimum(np.arange(o) * st - pb + k, n)
                        - np.maximum(np.arange(o) * st - pb, 0),
                        tf.int32,
                    )
                    for (k, st, pb, _), n, o in zip(geometry, in_hw, out_hw)
                )
            step["op"] = _window_op(layer, geometry, counts)
        else:
            union = [
                _union([getattr(v, axis) for v in values]) for axis in ("rows", "cols")
            ]
            spans = [_Span(o, u.lo, u.hi) for o, u in zip(out_hw, union)]
        step["rule"], step["spans"] = rule, spans
        area = spans[0].n * spans[1].n
        record.update(
            patch=(spans[0].n, spans[1].n), size=out_hw, fraction=area / np.prod(out_hw)
        )
        record["macs_patch"] = record["macs"] * area / np.prod(out_hw)
        if area >= self.full_fraction * np.prod(out_hw):
            step["rule"] = "full"
            record["macs_patch"] = record["macs"]
            self.plan.append({**record, "mode": "full", "reason": "patch covers map"})
            return self._full(out)
        self.plan.append({**record, "mode": "patch"})
        return _Value(out, *spans)

    # --------------------------------------------------------- occluded pass
    def occluded(self, layer: Any, args: tuple, kwargs: dict) -> Any:
        step = self.steps[self._key(layer)]
        if step["rule"] == "const":
            return step["clean"]
        flat = list(args[0]) if step["nested"] else list(args)
        call = (
            (lambda a: layer(a, **kwargs))
            if step["nested"]
            else (lambda a: layer(*a, **kwargs))
        )
        rule = step["rule"]
        if rule == "elementwise":
            value = flat[0]
            return _Value(step["clean"], *step["spans"], layer(value.data, **kwargs))
        if rule == "window":
            value, (rows, cols) = flat[0], step["spans"]
            geometry = step["geometry"]
            crop = self._crop(
                value,
                step["padded"],
                [g[2] for g in geometry],
                [rows.start * geometry[0][1], cols.start * geometry[1][1]],
                [(span.n - 1) * g[1] + g[0] for span, g in zip((rows, cols), geometry)],
            )
            crop = tf.cast(crop, getattr(layer, "compute_dtype", crop.dtype))
            out_rows = self._indices(rows.start, rows.n, "i")
            out_cols = self._indices(cols.start, cols.n, "j")
            data = step["op"](crop, out_rows, out_cols)
            return _Value(step["clean"], rows, cols, data)
        if rule == "merge":
            rows, cols = step["spans"]
            crops = [
                self._crop(
                    a,
                    a.clean if isinstance(a, _Value) else a,
                    [0, 0],
                    [rows.start, cols.start],
                    [rows.n, cols.n],
                )
                for a in flat
            ]
            return _Value(step["clean"], rows, cols, call(crops))
        full = [
            self._materialize(a)
            if isinstance(a, _Value)
            else a
            if kind == "full"
            else tf.gather(a, self.context["sample"])
            for a, kind in zip(flat, step["kinds"])
        ]
        return self._full(call(full))

    def _indices(self, start: np.ndarray, n: int, axis: str) -> tf.Tensor:
        """`(k, n)`: the map indices `start[p] + range(n)` of each window."""
        offset = tf.gather(tf.constant(start, tf.int32), self.context[axis])
        return offset[:, None] + tf.range(n)

    def _materialize(self, value: _Value) -> tf.Tensor:
        zeros = [np.zeros_like(value.rows.lo), np.zeros_like(value.cols.lo)]
        sizes = [value.rows.size, value.cols.size]
        return self._crop(value, value.clean, [0, 0], zeros, sizes)

    def _crop(self, value: Any, padded: Any, pads: list, starts: list, sizes: list):
        """`(k, m_r, m_c, C)`: per window, rows `starts[0][p] + range(m_r)` and
        columns alike (coordinates of the map padded by `pads` before) of the
        occluded map: the patch where it has one, else the clean map."""
        if isinstance(value, _Value):
            spans = (value.rows, value.cols)
            offsets = [st - (s.start + p) for st, s, p in zip(starts, spans, pads)]
            if all(
                (o >= 0).all() and (o + m <= s.n).all()
                for o, m, s in zip(offsets, sizes, spans)
            ):  # the crop lies inside the patch
                data = value.data
                for axis, (o, m, name) in enumerate(zip(offsets, sizes, "ij"), 1):
                    if (o == o[0]).all():
                        data = (
                            data[:, o[0] : o[0] + m]
                            if axis == 1
                            else data[:, :, o[0] : o[0] + m]
                        )
                    else:
                        index = self._indices(o, m, name)
                        data = tf.gather(data, index, axis=axis, batch_dims=1)
                return data
        rows = self._indices(starts[0], sizes[0], "i")
        cols = self._indices(starts[1], sizes[1], "j")
        shape = tf.concat([tf.shape(rows), sizes[1:]], axis=0)
        sample = tf.broadcast_to(self.context["sample"][:, None, None], shape)
        grid = tf.stack(
            [
                sample,
                tf.broadcast_to(rows[:, :, None], shape),
                tf.broadcast_to(cols[:, None, :], shape),
            ],
            axis=-1,
        )
        base = tf.gather_nd(padded, grid)
        if not isinstance(value, _Value):
            return base
        inside = []
        for index, span, pad, name in zip((rows, cols), spans, pads, "ij"):
            local = index - self._indices(span.start + pad, 1, name)
            inside.append((local >= 0) & (local < span.n))
            clipped = tf.clip_by_value(local, 0, span.n - 1)
            value = dataclasses.replace(
                value,
                data=tf.gather(value.data, clipped, axis=len(inside), batch_dims=1),
            )
        mask = inside[0][:, :, None, None] & inside[1][:, None, :, None]
        return tf.where(mask, tf.cast(value.data, base.dtype), base)


def _macs(layer: Any, inputs: list, out: Any) -> dict:
    """Multiply-adds of a layer per image: `{"macs": total}`."""
    name = type(layer).__name__
    channels = int(out.shape[-1])
    positions = int(np.prod(out.shape[1:-1])) if out.shape.rank > 2 else 1
    c_in = int(inputs[0].shape[-1]) if hasattr(inputs[0], "shape") else channels
    if name in _CONVS:
        kernel = int(np.prod(_pair(layer.kernel_size)))
        per = {
            "Conv2D": kernel * c_in * channels,
            "DepthwiseConv2D": kernel * channels,
        }.get(
            name,
            kernel * c_in * getattr(layer, "depth_multiplier", 1) + c_in * channels,
        )
    elif name in ("Dense",):
        per = c_in * channels
    elif name in _POOLS:
        per = int(np.prod(_pair(layer.pool_size))) * channels
    else:
        per = channels
    return {"macs": per * positions}


def _input_spans(height: int, width: int, window: tuple, stride: tuple) -> list:
    """The changed rows and columns of the image for every window position."""
    (win_w, win_h), (step_w, step_h) = window, stride
    spans = []
    for n, win, step in ((height, win_h, step_h), (width, win_w, step_w)):
        lo = np.arange((n - win) // step + 1) * step
        spans.append(_Span(n, lo, lo + win))
    return spans


def _supported(model: Any, x: tf.Tensor, spatial_axis: Any) -> str | None:
    """Why incremental inference does not apply, or None."""
    if not has_graph(model) and not is_exposed(model):
        return "the model has no layer graph"
    if tuple(int(a) % 4 for a in spatial_axis) != (1, 2):
        return "the inputs are not channels-last"
    if x.shape[1] is None or x.shape[2] is None:
        return "the image size is not static"
    if is_exposed(model) and model.endpoints[0][1] != "output":
        return "the explained output is a layer's input"
    return None


def _check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"`full_fraction` must be a number. {received('full_fraction', value)}"
        )
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"`full_fraction` must be in (0, 1]. {received('full_fraction', value)}"
        )
    return float(value)


def _occluded_scores(
    model, x, indices, window, stride, occluder, batch_size, full_fraction, jobs
):
    """`(clean scores (B, L), occluded scores (N, L), plan)`: `jobs` is int
    `(N, 3)` rows `(sample, row position, column position)`."""
    height, width = int(x.shape[1]), int(x.shape[2])
    fill = tf.cast(_check_occluder(occluder, x.shape[-1]), x.dtype)
    planner = _Planner(model, full_fraction)
    rows, cols = _input_spans(height, width, window, stride)
    first = tf.convert_to_tensor(planner.run(_Value(x, rows, cols), planner.clean))
    if first.shape.rank != 2:
        raise ValueError(
            "The explained output must be scores of shape (batch, units); the "
            f"model returned shape {tuple(first.shape)}. Expose a Target, e.g. "
            "expose(model, outputs=Target(layer, reduce='mean'))."
        )
    logits = tf.cast(gather_units(first, indices), tf.float32)
    indices = None if indices is None else tf.convert_to_tensor(indices)
    total = size(jobs, 0)

    def update(state, job, valid):
        del valid  # a padded job repeats the last one: same row, same value.
        sample, i, j = tf.unstack(tf.gather(jobs, job), axis=1)
        planner.context = {"sample": sample, "i": i, "j": j}
        win_w, win_h = window
        data = tf.broadcast_to(
            fill, tf.stack([tf.size(job), win_h, win_w, x.shape[-1]])
        )
        first = planner.run(_Value(x, rows, cols, data), planner.occluded)
        units = None if indices is None else tf.gather(indices, sample)
        values = tf.cast(gather_units(first, units), tf.float32)
        return tf.tensor_scatter_nd_update(state, job[:, None], values)

    state = tf.zeros(tf.stack([total, size(logits, 1)]))
    return logits, chunked(total, batch_size, update, state), planner.plan


def incremental_occlusion(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    window: tuple[int, int] = (11, 11),
    stride: tuple[int, int] = (2, 2),
    occluder: float | Sequence[float] = 0.0,
    batch_size: int = 64,
    spatial_axis: tuple[int, int] = (-3, -2),
    full_fraction: float = 1.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Occlusion sensitivity by incremental inference: `occlusion`'s maps, faster.

    Same arguments, semantics and result as `occlusion` (window `(width,
    height)`, stride `(w_step, h_step)`, `maps[b, i, j, l] = s_l(x_b) -
    s_l(x_b occluded at (i, j))`), equal up to float32 round-off. Each layer
    recomputes only the patch its window can reach (see the module docstring
    and `incremental_plan`); layers after the first whose patch covers its map
    (or after a layer kind without a patch rule) run in full on the copies.
    Supported patch rules: Conv2D, DepthwiseConv2D, SeparableConv2D (groups 1,
    any padding, stride or dilation), max and average pooling, ZeroPadding2D,
    BatchNormalization and activations, Add/Concatenate and the other merges,
    inside nested models too. Models without a layer graph, channels-first
    inputs or dynamic image sizes run plain `occlusion` (logged at INFO).

    Args:
        model: a functional or Sequential model (or an exposed one) whose first
            output is the explained scores `(B, K)`.
        inputs: float images `(B, H, W, C)` with static `H` and `W`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        window: `(width, height)` of the occluder.
        stride: `(w_step, h_step)` between window positions.
        occluder: the value of occluded pixels, a number or one per channel.
        batch_size: occluded copies per pass.
        spatial_axis: the height and width axes of `inputs`.
        full_fraction: a layer runs in full once its patch covers this
            fraction of its map (1.0: only when it covers all of it).

    Returns:
        `(logits, maps)` of shapes `(B, L)` and `(B, H, W, L)`, as `occlusion`
        (the window values spread over the pixels each window hid).

    Raises:
        ValueError: as `occlusion`, or `full_fraction` outside (0, 1].
        TypeError: as `occlusion`, or a non-numeric `full_fraction`.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 3)),
        ...     keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
        ...     keras.layers.Dense(2)])
        >>> logits, maps = incremental_occlusion(model, tf.ones((1, 8, 8, 3)),
        ...                                      window=(4, 4), stride=(2, 2))
        >>> maps.shape
        TensorShape([1, 8, 8, 2])

    References:
        Nakandala, Kumar & Papakonstantinou, Incremental and Approximate
        Inference for Faster Occlusion-based Deep CNN Explanations, SIGMOD
        2019. arXiv:1901.07637.
    """
    options = dict(window=window, stride=stride, occluder=occluder)
    batch_size = check_positive_int(batch_size, "batch_size")
    full_fraction = _check_fraction(full_fraction)
    x, _ = channels_last(inputs, spatial_axis)
    reason = _supported(model, x, spatial_axis)
    if reason is not None:
        LOG.info("incremental_occlusion runs plain occlusion: %s.", reason)
        return occlusion(
            model,
            inputs,
            indices,
            batch_size=batch_size,
            spatial_axis=spatial_axis,
            **options,
        )
    height, width = int(x.shape[1]), int(x.shape[2])
    window = _check_pair(window, "window", height, width)
    stride = _check_pair(stride, "stride", height, width)
    n_row = (height - window[1]) // stride[1] + 1
    n_col = (width - window[0]) // stride[0] + 1
    batch = size(x, 0)
    job = tf.range(batch * n_row * n_col)
    position = job % (n_row * n_col)
    jobs = tf.stack([job // (n_row * n_col), position // n_col, position % n_col], 1)
    logits, occluded, _ = _occluded_scores(
        model, x, indices, window, stride, occluder, batch_size, full_fraction, jobs
    )
    grid = logits[:, None, None, :] - tf.reshape(occluded, [batch, n_row, n_col, -1])
    return logits, spread_windows(grid, (height, width), window[::-1], stride[::-1])


def incremental_plan(
    model: Any,
    input_shape: tuple[int, int, int],
    window: tuple[int, int] = (11, 11),
    stride: tuple[int, int] = (2, 2),
    *,
    full_fraction: float = 1.0,
) -> dict[str, Any]:
    """What `incremental_occlusion` recomputes, layer by layer.

    Args:
        model: as `incremental_occlusion`.
        input_shape: `(H, W, C)` of one image.
        window: `(width, height)` of the occluder.
        stride: `(w_step, h_step)`.
        full_fraction: as `incremental_occlusion`.

    Returns:
        A dict: `"layers"`, one record per layer call that depends on the image
        (`layer`, `kind`, `mode` "patch" or "full", `patch` `(rows, cols)` and
        `size` `(H', W')` for maps, `reason` for full ones, `macs` and
        `macs_patch`, the multiply-adds per image and per occluded copy);
        `"fallback"`, the first layer run in full and why (None if none); and
        `"macs"`, `(full, incremental)` multiply-adds per occluded copy.

    Example:
        >>> incremental_plan(model, (32, 32, 3), (8, 8), (4, 4))["fallback"]
        {'layer': 'flatten', 'reason': 'no patch rule'}
    """
    full_fraction = _check_fraction(full_fraction)
    height, width, channels = (
        check_positive_int(s, "input_shape") for s in input_shape
    )
    window = _check_pair(window, "window", height, width)
    stride = _check_pair(stride, "stride", height, width)
    planner = _Planner(model, full_fraction)
    rows, cols = _input_spans(height, width, window, stride)
    planner.run(
        _Value(tf.zeros((1, height, width, channels)), rows, cols), planner.clean
    )
    first = next((r for r in planner.plan if r["mode"] == "full"), None)
    fallback = None if first is None else {k: first[k] for k in ("layer", "reason")}
    total = sum(r["macs"] for r in planner.plan)
    patch = sum(r.get("macs_patch", r["macs"]) for r in planner.plan)
    return {"layers": planner.plan, "fallback": fallback, "macs": (total, patch)}


def _interpolation(fine: int, step: int) -> np.ndarray:
    """`(fine, coarse)`: linear interpolation of positions `0, step, 2 step...`."""
    coarse = (fine - 1) // step + 1
    matrix = np.zeros((fine, coarse), np.float32)
    for i in range(fine):
        low, frac = divmod(i, step)
        high = min(low + 1, coarse - 1)
        matrix[i, low] += 1.0 - (frac / step if high > low else 0.0)
        matrix[i, high] += frac / step if high > low else 0.0
    return matrix


def approximate_occlusion(
    model: Any,
    inputs: tf.Tensor,
    indices: tf.Tensor | None = None,
    *,
    window: tuple[int, int] = (11, 11),
    stride: tuple[int, int] = (2, 2),
    occluder: float | Sequence[float] = 0.0,
    batch_size: int = 64,
    spatial_axis: tuple[int, int] = (-3, -2),
    coarse: int = 2,
    refine: float = 0.25,
) -> tuple[tf.Tensor, tf.Tensor]:
    """APPROXIMATE occlusion by adaptive drill-down: coarse grid, then refine.

    The window positions on every `coarse`-th row and column are computed
    exactly (incrementally); the others are linearly interpolated from them,
    and the fraction `refine` of them where the interpolated map is highest
    (the largest unit, per image) is then computed exactly. Costs about
    `1 / coarse**2 + refine` of `incremental_occlusion`; regions of low
    sensitivity keep interpolated values. Its error against the exact map is
    measured in `benchmarks/bench_perf.py` (rank correlation, top-k overlap).

    Args:
        model: as `incremental_occlusion`.
        inputs: float images `(B, H, W, C)` with static `H` and `W`.
        indices: units to explain, int `(B, L)`. Defaults to `None` (all units).
        window: `(width, height)` of the occluder.
        stride: `(w_step, h_step)` of the fine grid.
        occluder: the value of occluded pixels, a number or one per channel.
        batch_size: occluded copies per pass.
        spatial_axis: must be `(-3, -2)` (channels-last).
        coarse: the coarse grid keeps every `coarse`-th position per axis.
        refine: the fraction of the other positions computed exactly, in
            [0, 1] (1 gives the exact map).

    Returns:
        `(logits, maps)` as `occlusion`: `(B, L)` and `(B, H, W, L)`.

    Raises:
        ValueError: as `incremental_occlusion`; `coarse` not positive,
            `refine` outside [0, 1], or a model `incremental_occlusion` cannot
            run incrementally.

    Example:
        >>> logits, maps = approximate_occlusion(model, x, window=(8, 8),
        ...                                      stride=(2, 2), refine=0.1)

    References:
        Nakandala, Kumar & Papakonstantinou, Incremental and Approximate
        Inference for Faster Occlusion-based Deep CNN Explanations, SIGMOD
        2019 (adaptive drill-down). arXiv:1901.07637.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    coarse = check_positive_int(coarse, "coarse")
    if isinstance(refine, bool) or not isinstance(refine, (int, float, np.number)):
        raise TypeError(f"`refine` must be a number. {received('refine', refine)}")
    if not 0.0 <= float(refine) <= 1.0:
        raise ValueError(f"`refine` must be in [0, 1]. {received('refine', refine)}")
    x, _ = channels_last(inputs, spatial_axis)
    reason = _supported(model, x, spatial_axis)
    if reason is not None:
        raise ValueError(
            f"approximate_occlusion needs incremental inference, but {reason}. "
            f"{received('model', getattr(model, 'name', model))}"
        )
    height, width = int(x.shape[1]), int(x.shape[2])
    window = _check_pair(window, "window", height, width)
    stride = _check_pair(stride, "stride", height, width)
    n_row = (height - window[1]) // stride[1] + 1
    n_col = (width - window[0]) // stride[0] + 1
    rows, cols = _interpolation(n_row, coarse), _interpolation(n_col, coarse)
    batch = size(x, 0)
    grid = (
        np.stack(
            np.meshgrid(
                np.arange(rows.shape[1]), np.arange(cols.shape[1]), indexing="ij"
            ),
            -1,
        )
        .reshape(-1, 2)
        .astype(np.int32)
        * coarse
    )
    job = tf.range(batch * len(grid))
    jobs = tf.concat([(job // len(grid))[:, None], tf.gather(grid, job % len(grid))], 1)
    args = (window, stride, occluder, batch_size, 1.0)
    logits, occluded, _ = _occluded_scores(model, x, indices, *args, jobs)
    low = logits[:, None, None] - tf.reshape(
        occluded, [batch, rows.shape[1], cols.shape[1], -1]
    )
    maps = tf.einsum("ri,bijl,cj->brcl", rows, low, cols)
    exact = np.zeros((n_row, n_col), bool)
    exact[::coarse, ::coarse] = True
    count = int(np.ceil(refine * (~exact).sum()))
    if count:
        rank = tf.where(
            exact.reshape(-1), -np.inf, tf.reshape(tf.reduce_max(maps, -1), [batch, -1])
        )
        top = tf.math.top_k(rank, k=count).indices  # (B, count)
        sample = tf.repeat(tf.range(batch), count)
        flat = tf.reshape(top, [-1])
        jobs = tf.stack([sample, flat // n_col, flat % n_col], 1)
        _, values, _ = _occluded_scores(model, x, indices, *args, jobs)
        values = tf.gather(logits, sample) - values
        maps = tf.tensor_scatter_nd_update(maps, jobs, values)
    return logits, spread_windows(maps, (height, width), window[::-1], stride[::-1])
