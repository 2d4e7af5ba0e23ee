"""The files `explain_files` writes: names, formats, and byte-identical writes.

Every output name is fixed by the output prefix, the shard count and the
format, and every file's bytes depend only on its rows (rows sorted, zip
entries dated 1980-01-01, no timestamps in Parquet), so running the pipeline
twice to the same prefix rewrites the same files with the same bytes.
Files are written through Beam's `FileSystems` (local paths, `gs://`, `s3://`,
...) to a temporary name first and then renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems

from keras_interp._validation import check_one_of

#: Output formats of the result rows.
FORMATS = ("parquet", "jsonl")

#: Parquet column types of a result row (`pyarrow` type names).
ROW_SCHEMA = (
    ("path", "string"),
    ("rank", "int32"),
    ("image_height", "int32"),
    ("image_width", "int32"),
    ("predicted_class", "int64"),
    ("probability", "float64"),
    ("explained_class", "int64"),
    ("explained_logit", "float64"),
    ("explained_probability", "float64"),
    ("peak_row", "int32"),
    ("peak_col", "int32"),
    ("peak_value", "float64"),
    ("map_mean", "float64"),
    ("mass_top_left", "float64"),
    ("mass_top_right", "float64"),
    ("mass_bottom_left", "float64"),
    ("mass_bottom_right", "float64"),
    ("overlay", "string"),
)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def shard_of(path: str, num_shards: int) -> int:
    """The shard a file's rows go to: a stable hash of its path."""
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()
    return int(digest[:12], 16) % num_shards


def shard_name(output: str, kind: str, shard: int, num_shards: int, ext: str) -> str:
    """`{output}-{kind}-{shard:05d}-of-{num_shards:05d}.{ext}`."""
    return f"{output}-{kind}-{shard:05d}-of-{num_shards:05d}.{ext}"


def overlay_name(output: str, path: str, rank: int) -> str:
    """Where the overlay of `path`'s `rank`-th explained class goes: the file
    stem, a digest of the whole path (stems may repeat) and the rank."""
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return f"{output}-overlays/{stem}-{digest}-{rank}.png"


def write_bytes(path: str, content: bytes) -> None:
    """Write `content` to `path` via a temporary file renamed into place."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary) as handle:
        handle.write(content)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def read_bytes(path: str) -> bytes:
    """The bytes of `path` (any filesystem Beam supports)."""
    with FileSystems.open(path) as handle:
        return handle.read()


def rows_bytes(rows: Iterable[Mapping[str, Any]], output_format: str) -> bytes:
    """Result rows as a Parquet file or JSON lines (one object per line).

    Args:
        rows: dicts with the keys of `ROW_SCHEMA`, already in file order.
        output_format: `"parquet"` or `"jsonl"`.

    Returns:
        The file's bytes.
    """
    check_one_of(output_format, FORMATS, "output_format")
    rows = list(rows)
    if output_format == "jsonl":
        return jsonl_bytes(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in ROW_SCHEMA])
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def jsonl_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines: one object per line, keys sorted, NaN written as null."""
    lines = (json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in records)
    return "".join(lines).encode("utf-8")


def arrays_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A compressed `.npz` archive of `arrays` with fixed entry dates.

    `numpy.load` reads it like a file of `numpy.savez_compressed`, whose entry
    dates are the time of writing (so its bytes change on every run).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(
                entry, np.ascontiguousarray(array), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def json_bytes(value: Any) -> bytes:
    """`value` as indented JSON with sorted keys."""
    return (json.dumps(_jsonable(value), indent=2, sort_keys=True) + "\n").encode()


def _jsonable(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN as None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
