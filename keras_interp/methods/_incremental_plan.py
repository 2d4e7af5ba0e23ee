"""Incremental occlusion's planning: which rows and columns of every layer's map
an occluding window can change, and the two passes that use that plan.

`Span` holds, for one axis of a map and every window position, the changed
range and the fixed-size patch recomputed around it; `window_span` carries a
span through a sliding window (it grows by the kernel and shrinks by the
stride), `union` through a merge. `Planner` runs the model through
`run_graph`'s override twice: once on the clean images, keeping every map and
planning each layer's patch with NumPy from the static shapes (`clean`), then
per batch of window positions on the patches, replaying the plan
(`occluded`). The per-layer rules are in `_incremental_layers`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import received
from keras_interp.inspection.expose import exposed_layers, is_exposed
from keras_interp.inspection.graph import run_graph
from keras_interp.methods import _incremental_layers as rules


@dataclasses.dataclass(frozen=True)
class Span:
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


def window_span(span: Span, out: int, kernel: int, stride: int, pad: int) -> Span:
    """The outputs of a sliding window (`kernel`, `stride`, `pad` before) that
    read a changed input."""
    lo = np.clip(-(-(span.lo + pad - kernel + 1) // stride), 0, out)
    hi = np.clip((span.hi - 1 + pad) // stride + 1, 0, out)
    return Span(out, lo, np.where((span.hi <= span.lo) | (hi < lo), lo, hi))


def union(spans: list[Span]) -> Span:
    """The span of a merge's output: per position, the union of its inputs'
    changed ranges (inputs with none changed are ignored)."""
    lo = np.min([np.where(s.hi > s.lo, s.lo, s.size) for s in spans], axis=0)
    hi = np.max([np.where(s.hi > s.lo, s.hi, 0) for s in spans], axis=0)
    return Span(spans[0].size, np.minimum(lo, hi), hi)


@dataclasses.dataclass
class Value:
    """A map in patch mode: the clean map `(B, H, W, C)`, its spans, and (in the
    occluded pass) the patch `(k, n_rows, n_cols, C)`."""

    clean: Any
    rows: Span
    cols: Span
    data: Any = None


class Planner:
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
        return first.clean if isinstance(first, Value) else first

    def _key(self, layer: Any) -> tuple[int, int]:
        count = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = count + 1
        return id(layer), count

    def _kinds(self, args: tuple) -> list[str]:
        flat = list(args[0]) if isinstance(args[0], (list, tuple)) else list(args)
        return [
            "patch"
            if isinstance(a, Value)
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
        plain = [a.clean if isinstance(a, Value) else a for a in flat]
        out = layer(plain, **kwargs) if nested else layer(*plain, **kwargs)
        step = {"kinds": kinds, "clean": out, "nested": nested, "rule": "full"}
        self.steps[key] = step
        if "patch" not in kinds and "full" not in kinds:
            step["rule"] = "const"  # does not depend on the image: reuse it
            return out
        rule = rules.rule(layer)
        record = {"layer": layer.name, "kind": type(layer).__name__}
        record.update(rules.macs(layer, plain, out))
        if "full" in kinds:
            self.plan.append({**record, "mode": "full", "reason": "input in full"})
            return self._full(out)
        if rule is None or out.shape.rank != 4 or id(layer) in self.outputs:
            self.plan.append({**record, "mode": "full", "reason": "no patch rule"})
            return self._full(out)
        out_hw = tuple(int(d) for d in out.shape[1:3])
        values = [a for a in flat if isinstance(a, Value)]
        if rule == "window":
            (value,) = values
            in_hw = (value.rows.size, value.cols.size)
            geometry = rules.windowing(layer, in_hw, out_hw)
            spans = [
                window_span(s, o, k, st, pb)
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
                counts = rules.pool_counts(geometry, in_hw, out_hw)
            step["op"] = rules.window_op(layer, geometry, counts)
        else:
            merged = [
                union([getattr(v, axis) for v in values]) for axis in ("rows", "cols")
            ]
            spans = [Span(o, u.lo, u.hi) for o, u in zip(out_hw, merged)]
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
        return Value(out, *spans)

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
            return Value(step["clean"], *step["spans"], layer(value.data, **kwargs))
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
            return Value(step["clean"], rows, cols, data)
        if rule == "merge":
            rows, cols = step["spans"]
            crops = [
                self._crop(
                    a,
                    a.clean if isinstance(a, Value) else a,
                    [0, 0],
                    [rows.start, cols.start],
                    [rows.n, cols.n],
                )
                for a in flat
            ]
            return Value(step["clean"], rows, cols, call(crops))
        full = [
            self._materialize(a)
            if isinstance(a, Value)
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

    def _materialize(self, value: Value) -> tf.Tensor:
        zeros = [np.zeros_like(value.rows.lo), np.zeros_like(value.cols.lo)]
        sizes = [value.rows.size, value.cols.size]
        return self._crop(value, value.clean, [0, 0], zeros, sizes)

    def _crop(self, value: Any, padded: Any, pads: list, starts: list, sizes: list):
        """`(k, m_r, m_c, C)`: per window, rows `starts[0][p] + range(m_r)` and
        columns alike (coordinates of the map padded by `pads` before) of the
        occluded map: the patch where it has one, else the clean map."""
        if isinstance(value, Value):
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
        if not isinstance(value, Value):
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


def input_spans(height: int, width: int, window: tuple, stride: tuple) -> list:
    """The changed rows and columns of the image for every window position."""
    (win_w, win_h), (step_w, step_h) = window, stride
    spans = []
    for n, win, step in ((height, win_h, step_h), (width, win_w, step_w)):
        lo = np.arange((n - win) // step + 1) * step
        spans.append(Span(n, lo, lo + win))
    return spans


def check_fraction(value: Any) -> float:
    """`full_fraction` as a float in (0, 1], or a TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"`full_fraction` must be a number. {received('full_fraction', value)}"
        )
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"`full_fraction` must be in (0, 1]. {received('full_fraction', value)}"
        )
    return float(value)
