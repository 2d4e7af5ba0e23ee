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

The planning and the two passes are in `_incremental_plan`, the per-layer
patch rules in `_incremental_layers`; this module holds the methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_interp._validation import check_positive_int, received
from keras_interp.inspection.expose import is_exposed
from keras_interp.inspection.graph import has_graph
from keras_interp.inspection.units import gather_units
from keras_interp.methods._base import channels_last, chunked, size
from keras_interp.methods._batching import check_batch_size
from keras_interp.methods._incremental_plan import (
    Planner,
    Value,
    check_fraction,
    input_spans,
)
from keras_interp.methods.perturbation import (
    _check_occluder,
    _check_pair,
    occlusion,
    spread_windows,
)

LOG = logging.getLogger(__name__)


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


def _occluded_scores(
    model, x, indices, window, stride, occluder, batch_size, full_fraction, jobs
):
    """`(clean scores (B, L), occluded scores (N, L), plan)`: `jobs` is int
    `(N, 3)` rows `(sample, row position, column position)`."""
    height, width = int(x.shape[1]), int(x.shape[2])
    fill = tf.cast(_check_occluder(occluder, x.shape[-1]), x.dtype)
    planner = Planner(model, full_fraction)
    rows, cols = input_spans(height, width, window, stride)
    first = tf.convert_to_tensor(planner.run(Value(x, rows, cols), planner.clean))
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
        first = planner.run(Value(x, rows, cols, data), planner.occluded)
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
        >>> import keras
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...     keras.layers.Conv2D(4, 3, name="conv"),
        ...     keras.layers.Flatten(name="flat"),
        ...     keras.layers.Dense(2, name="dense")])
        >>> x = tf.random.stateless_uniform((1, 16, 16, 3), (0, 1))
        >>> logits, maps = incremental_occlusion(model, x, window=(4, 4),
        ...                                      stride=(2, 2))
        >>> maps.shape
        TensorShape([1, 16, 16, 2])
        >>> _, plain = occlusion(model, x, window=(4, 4), stride=(2, 2))
        >>> float(np.abs(maps - plain).max()) < 1e-5
        True

    References:
        Nakandala, Kumar & Papakonstantinou, Incremental and Approximate
        Inference for Faster Occlusion-based Deep CNN Explanations, SIGMOD
        2019. arXiv:1901.07637.
    """
    options = dict(window=window, stride=stride, occluder=occluder)
    batch_size = check_batch_size(batch_size)
    full_fraction = check_fraction(full_fraction)
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
        >>> import keras
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...     keras.layers.Conv2D(4, 3, name="conv"),
        ...     keras.layers.Flatten(name="flat"),
        ...     keras.layers.Dense(2, name="dense")])
        >>> plan = incremental_plan(model, (16, 16, 3), (4, 4), (4, 4))
        >>> [(r["layer"], r["mode"], r.get("patch")) for r in plan["layers"]]
        [('conv', 'patch', (6, 6)), ('flat', 'full', None), ('dense', 'full', None)]
        >>> plan["fallback"]
        {'layer': 'flat', 'reason': 'no patch rule'}
        >>> [int(m) for m in plan["macs"]]  # conv: 3*3*3*4 per position, 14x14 or 6x6
        [23520, 6240]
    """
    full_fraction = check_fraction(full_fraction)
    height, width, channels = (
        check_positive_int(s, "input_shape") for s in input_shape
    )
    window = _check_pair(window, "window", height, width)
    stride = _check_pair(stride, "stride", height, width)
    planner = Planner(model, full_fraction)
    rows, cols = input_spans(height, width, window, stride)
    planner.run(
        Value(tf.zeros((1, height, width, channels)), rows, cols), planner.clean
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
        >>> import keras
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...     keras.layers.Conv2D(4, 3, name="conv"),
        ...     keras.layers.Flatten(name="flat"),
        ...     keras.layers.Dense(2, name="dense")])
        >>> x = tf.random.stateless_uniform((1, 16, 16, 3), (0, 1))
        >>> options = dict(window=(4, 4), stride=(4, 4))
        >>> logits, rough = approximate_occlusion(model, x, refine=0.25, **options)
        >>> rough.shape
        TensorShape([1, 16, 16, 2])
        >>> _, exact = occlusion(model, x, **options)
        >>> _, same = approximate_occlusion(model, x, refine=1.0, **options)
        >>> float(np.abs(same - exact).max()) < 1e-5
        True

    References:
        Nakandala, Kumar & Papakonstantinou, Incremental and Approximate
        Inference for Faster Occlusion-based Deep CNN Explanations, SIGMOD
        2019 (adaptive drill-down). arXiv:1901.07637.
    """
    batch_size = check_batch_size(batch_size)
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
