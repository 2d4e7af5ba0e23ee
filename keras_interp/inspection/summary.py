"""A table of a model's layers at every depth, for humans and the CLI."""

from __future__ import annotations

from typing import Any

from keras_interp.inspection.graph import has_graph, iter_layers, layer_dependencies
from keras_interp.inspection.graph import output_shape as _output_shape
from keras_interp.inspection.heads import get_global_pooling_layer


def _spatial(shape: tuple | None) -> tuple | None:
    if shape is None or len(shape) != 4 or None in shape[1:3]:
        return None
    return tuple(shape[1:3])


def _leaves(paths, inbound, layers) -> set[str]:
    """Replace nested models among `paths` by the layers producing their output."""
    result = set()
    for path in paths:
        inner = [p for p in inbound.get(path, ()) if p.startswith(path + "/")]
        result |= _leaves(inner, inbound, layers) if inner else {path}
    return result


def layer_table(model: Any) -> list[dict[str, Any]]:
    """One row per layer (nested ones included), in execution order.

    Each row has `path`, `depth` (nesting level), `kind` (class name),
    `output_shape`, `inbound` (paths of the layers feeding it; empty for a
    subclassed model) and `cam`: `"default"` for the layer whose output feeds
    the global pooling (what `expose()` explains by default), `"candidate"`
    for the other layers with a 4-D output at the model's last spatial
    resolution above 1x1 (good CAM targets), `""` otherwise.

    Args:
        model: a Keras 3 or tf_keras model.

    Returns:
        The rows, as a list of dicts.
    """
    layers = dict(iter_layers(model))
    inbound = dict(layer_dependencies(model)) if has_graph(model) else {}
    try:
        pooling = get_global_pooling_layer(model)
        pooling_path = next(p for p, layer in layers.items() if layer is pooling)
        default = _leaves(inbound.get(pooling_path, ()), inbound, layers)
    except (ValueError, StopIteration):
        default = set()
    shapes = {path: _output_shape(layer) for path, layer in layers.items()}
    sizes = [s for s in map(_spatial, shapes.values()) if s and s[0] * s[1] > 1]
    last = min(sizes, key=lambda s: s[0] * s[1]) if sizes else None
    rows = []
    for path, layer in layers.items():
        is_container = path + "/" in "".join(p[: len(path) + 1] for p in layers)
        cam = ""
        if path in default:
            cam = "default"
        elif _spatial(shapes[path]) == last and last and not is_container:
            cam = "candidate"
        rows.append(
            {
                "path": path,
                "depth": path.count("/"),
                "kind": type(layer).__name__,
                "output_shape": shapes[path],
                "inbound": inbound.get(path, []),
                "cam": cam,
            }
        )
    return rows


def _relative(path: str, to: str) -> str:
    """`path` without the nested-model prefix it shares with `to`."""
    parent = to.rsplit("/", 1)[0] + "/" if "/" in to else ""
    return path[len(parent) :] if parent and path.startswith(parent) else path


def format_layer_table(model: Any) -> str:
    """`layer_table(model)` as aligned text, nested layers indented.

    Each layer is printed by its full path (`"backbone/block_16_project"`),
    the reference `expose()` and `find_layer()` accept.
    """
    rows = layer_table(model)
    lines = [f"Model {model.name!r}: {len(rows)} layers (nested included)"]
    header = ("layer", "class", "output shape", "inbound", "CAM target")
    table = [header] + [
        (
            "  " * row["depth"] + row["path"],
            row["kind"],
            str(row["output_shape"]),
            ", ".join(_relative(p, row["path"]) for p in row["inbound"]),
            row["cam"],
        )
        for row in rows
    ]
    widths = [min(max(len(r[i]) for r in table), 64) for i in range(len(header))]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
