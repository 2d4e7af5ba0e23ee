"""The `explain-files` pipeline: match image files, explain them, write a table.

```
MatchFiles -> ReadMatches -> decode + resize --(failed)--------------------+
                                  |                                        |
            RunInference(ExplainModelHandler)  [BatchElements inside] --(failed)
                                  |                                        |
                summarise (rows, maps, overlays)                           |
                                  |                                        |
              shards by path -> results-*.parquet, maps-*.npz     failed.jsonl
                                  \\______________ manifest.json _________/
```

Nothing is dropped silently: an image that cannot be read or decoded, and a
batch the model fails on, go to the dead-letter file with the path, the stage
and the error; the counts of read, explained and failed images are Beam
metrics (namespace `keras_interp`) and are written to the manifest, which
says whether they add up. Output names and bytes depend only on the inputs
and the options, so a re-run to the same prefix writes the same files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from keras_interp._validation import check_one_of, check_positive_int, received
from keras_interp.beam import output as out
from keras_interp.beam.handler import ExplainModelHandler
from keras_interp.beam.summary import map_summary, overlay_png
from keras_interp.images import load_image

#: Namespace of the pipeline's Beam counters `read`, `explained` and `failed`.
METRICS_NAMESPACE = "keras_interp"


class _NamedBytes(io.BytesIO):
    """File bytes whose repr is the path (error messages stay reproducible)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name

    def __repr__(self) -> str:
        return f"<file {self.name!r}>"


def describe(error: BaseException) -> str:
    """`ExceptionType: message` of an error, for the dead-letter output."""
    return f"{type(error).__name__}: {error}"


class DecodeImage(beam.DoFn):
    """`ReadableFile` -> `((path, height, width), image)`; failures tagged."""

    def __init__(self, image_size: tuple[int, int], resize_mode: str) -> None:
        self._size = image_size
        self._mode = resize_mode
        self._read = Metrics.counter(METRICS_NAMESPACE, "read")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "failed")

    def process(self, readable: fileio.ReadableFile):
        path = readable.metadata.path
        self._read.inc()
        try:
            raw = load_image(_NamedBytes(readable.read(), path))
            image = load_image(raw, self._size, mode=self._mode)
        except Exception as error:  # noqa: BLE001 - any bad file is a dead letter
            self._failed.inc()
            failure = {"path": path, "stage": "decode", "error": describe(error)}
            yield beam.pvalue.TaggedOutput("failed", failure)
            return
        yield (path, int(raw.shape[0]), int(raw.shape[1])), image


def _failed_batch(element: Any):
    """RunInference's `(batch, exception)` -> one failure per image."""
    batch, error = element
    counter = Metrics.counter(METRICS_NAMESPACE, "failed")
    for (path, _, _), _ in batch:
        counter.inc()
        yield {"path": path, "stage": "inference", "error": describe(error)}


class Summarise(beam.DoFn):
    """`(key, PredictionResult)` -> `(shard, (rows, (path, classes, maps)))`."""

    def __init__(self, output: str, num_shards: int, overlays: bool) -> None:
        self._output = output
        self._num_shards = num_shards
        self._overlays = overlays
        self._explained = Metrics.counter(METRICS_NAMESPACE, "explained")

    def process(self, element: Any):
        (path, height, width), result = element
        found = result.inference
        predicted = int(found["predicted_class"])
        rows = []
        for rank, unit in enumerate(found["classes"]):
            heatmap = found["maps"][..., rank]
            overlay = None
            if self._overlays:
                overlay = out.overlay_name(self._output, path, rank)
                out.write_bytes(overlay, overlay_png(result.example, heatmap))
            rows.append(
                {
                    "path": path,
                    "rank": rank,
                    "image_height": height,
                    "image_width": width,
                    "predicted_class": predicted,
                    "probability": float(found["probabilities"][predicted]),
                    "explained_class": int(unit),
                    "explained_logit": float(found["explained_logits"][rank]),
                    "explained_probability": float(found["probabilities"][unit]),
                    **map_summary(heatmap),
                    "overlay": overlay,
                }
            )
        self._explained.inc()
        shard = out.shard_of(path, self._num_shards)
        yield shard, (rows, (path, found["classes"], found["maps"]))


class WriteShard(beam.DoFn):
    """Write one shard's rows and maps, sorted by path; yield the file names."""

    def __init__(self, output: str, num_shards: int, output_format: str) -> None:
        self._output = output
        self._num_shards = num_shards
        self._format = output_format

    def process(self, element: Any):
        shard, grouped = element
        items = sorted(grouped["results"], key=lambda item: item[1][0])
        rows = [row for item_rows, _ in items for row in item_rows]
        ext = "parquet" if self._format == "parquet" else "jsonl"
        name = out.shard_name(self._output, "results", shard, self._num_shards, ext)
        out.write_bytes(name, out.rows_bytes(rows, self._format))
        yield name
        if items:
            arrays = {
                "paths": np.array([path for _, (path, _, _) in items], dtype=str),
                "classes": np.stack([classes for _, (_, classes, _) in items]),
                "maps": np.stack([maps for _, (_, _, maps) in items]),
            }
        else:
            arrays = {
                "paths": np.zeros((0,), dtype=str),
                "classes": np.zeros((0, 0), np.int32),
                "maps": np.zeros((0, 0, 0, 0), np.float32),
            }
        name = out.shard_name(self._output, "maps", shard, self._num_shards, "npz")
        out.write_bytes(name, out.arrays_bytes(arrays))
        yield name


def _write_failed(element: Any, name: str):
    _, grouped = element
    failures = sorted(grouped["failed"], key=lambda f: (f["path"], f["stage"]))
    out.write_bytes(name, out.jsonl_bytes(failures))
    yield name


def _write_manifest(_: Any, name: str, settings: dict, read, explained, failed, files):
    manifest = {
        **settings,
        "counts": {"read": read, "explained": explained, "failed": failed},
        "complete": read == explained + failed,
        "files": sorted(files),
    }
    out.write_bytes(name, out.json_bytes(manifest))
    yield name


class ExplainFiles(beam.PTransform):
    """Explain every image file matching `pattern` and write the results.

    Applied to a pipeline (`pipeline | ExplainFiles(...)`), it writes, for an
    output prefix `OUT` and `n` shards:

    - `OUT-results-SSSSS-of-NNNNN.parquet` (or `.jsonl`): one row per image
      and explained class (`rank` 0 is the first), with the columns of
      `keras_interp.beam.output.ROW_SCHEMA`;
    - `OUT-maps-SSSSS-of-NNNNN.npz`: `paths (N,)`, `classes (N, L)` and
      `maps (N, H, W, L)` float32, in the rows' order;
    - `OUT-overlays/STEM-DIGEST-RANK.png` with `overlays=True`;
    - `OUT-failed.jsonl`: `{"path", "stage", "error"}` per failed image;
    - `OUT-manifest.json`: the options, the counts and the file names.

    Args:
        pattern: a file pattern (`"data/*.jpg"`, `"gs://bucket/**.png"`).
        handler: the `ExplainModelHandler`.
        output: the output prefix (any filesystem Beam supports).
        output_format: `"parquet"` or `"jsonl"`.
        num_shards: how many result and map files.
        overlays: also write a PNG overlay per image and explained class.

    `expand` returns a dict of PCollections: `files` (written names),
    `failed` (failure dicts) and `manifest` (its name).

    Raises:
        ValueError: a bad `output_format` or `num_shards`, or no image size
            (neither on the handler nor static in the model's input).
    """

    def __init__(
        self,
        pattern: str,
        handler: ExplainModelHandler,
        output: str,
        *,
        output_format: str = "parquet",
        num_shards: int = 4,
        overlays: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(handler, ExplainModelHandler):
            raise TypeError(
                "`handler` must be an ExplainModelHandler. "
                f"{received('handler', handler)}"
            )
        for arg, value in (("pattern", pattern), ("output", output)):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"`{arg}` must be a non-empty string. {received(arg, value)}"
                )
        self._pattern = pattern
        self._handler = handler
        self._output = output
        self._format = check_one_of(output_format, out.FORMATS, "output_format")
        self._num_shards = check_positive_int(num_shards, "num_shards")
        self._overlays = bool(overlays)
        self._size = handler.resolve_image_size()

    def settings(self) -> dict[str, Any]:
        """The options recorded in the manifest."""
        from keras_interp import __version__

        return {
            "keras_interp_version": __version__,
            "pattern": self._pattern,
            "output": self._output,
            "output_format": self._format,
            "num_shards": self._num_shards,
            "overlays": self._overlays,
            "image_size": list(self._size),
            **self._handler.describe(),
        }

    def expand(self, pipeline: Any) -> dict[str, Any]:
        n, output = self._num_shards, self._output
        files = (
            pipeline
            | "Match" >> fileio.MatchFiles(self._pattern)
            | "Read" >> fileio.ReadMatches()
        )
        decoded = files | "Decode" >> beam.ParDo(
            DecodeImage(self._size, self._handler.resize_mode)
        ).with_outputs("failed", main="images")
        explained, dead = (
            decoded.images
            | "Explain"
            >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling()
        )
        summarised = explained | "Summarise" >> beam.ParDo(
            Summarise(output, n, self._overlays)
        )
        all_shards = pipeline | "Shards" >> beam.Create([(s, None) for s in range(n)])
        written = (
            {"results": summarised, "shards": all_shards}
            | "GroupShards" >> beam.CoGroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShard(output, n, self._format))
        )
        inference_failed = dead.failed_inferences | "SplitBatches" >> beam.FlatMap(
            _failed_batch
        )
        failed = (decoded.failed, inference_failed) | "AllFailed" >> beam.Flatten()
        failed_name = f"{output}-failed.jsonl"
        failed_file = (
            {
                "failed": failed | "KeyFailed" >> beam.Map(lambda f: (0, f)),
                "one": pipeline | "One" >> beam.Create([(0, None)]),
            }
            | "GroupFailed" >> beam.CoGroupByKey()
            | "WriteFailed" >> beam.FlatMap(_write_failed, failed_name)
        )
        all_files = (written, failed_file) | "AllFiles" >> beam.Flatten()

        def count(pcoll: Any, label: str) -> Any:
            return beam.pvalue.AsSingleton(
                pcoll | label >> beam.combiners.Count.Globally()
            )

        manifest = (
            pipeline
            | "Start" >> beam.Create([None])
            | "WriteManifest"
            >> beam.FlatMap(
                _write_manifest,
                f"{output}-manifest.json",
                self.settings(),
                count(files, "CountRead"),
                count(explained, "CountExplained"),
                count(failed, "CountFailed"),
                beam.pvalue.AsList(all_files),
            )
        )
        return {"files": all_files, "failed": failed, "manifest": manifest}


def explain_files(
    pattern: str,
    model: Any,
    method: Any,
    output: str,
    *,
    output_format: str = "parquet",
    num_shards: int = 4,
    overlays: bool = False,
    pipeline_options: beam.options.pipeline_options.PipelineOptions
    | Sequence[str]
    | None = None,
    **handler_options: Any,
) -> dict[str, Any]:
    """Run the `ExplainFiles` pipeline and return its manifest.

    Args:
        pattern: the image files, e.g. `"images/*.png"`.
        model: a model path or a function returning the model.
        method: a method, name or spec.
        output: the output prefix.
        output_format: `"parquet"` or `"jsonl"`.
        num_shards: the number of result and map files.
        overlays: also write PNG overlays.
        pipeline_options: Beam `PipelineOptions` or command-line style
            arguments (`["--runner=DirectRunner", "--direct_num_workers=2"]`);
            `None` runs on the DirectRunner in this process.
        **handler_options: `ExplainModelHandler` options (`targets`, `top_k`,
            `preprocessing`, `image_size`, `max_batch_size`, method options).

    Returns:
        The manifest dict (options, `counts`, `complete`, `files`).

    Example:
        >>> import pathlib, tempfile, PIL.Image
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> PIL.Image.new("RGB", (8, 8)).save(folder / "a.png")
        >>> _ = (folder / "b.png").write_bytes(b"not an image")
        >>> manifest = explain_files(
        ...     str(folder / "*.png"), gap_dense, "gradcam", str(folder / "out/run")
        ... )
        >>> manifest["counts"]
        {'explained': 1, 'failed': 1, 'read': 2}
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    if pipeline_options is None or isinstance(pipeline_options, (list, tuple)):
        pipeline_options = PipelineOptions(list(pipeline_options or []))
    handler = ExplainModelHandler(model, method, **handler_options)
    pipeline = beam.Pipeline(options=pipeline_options)
    _ = pipeline | "ExplainFiles" >> ExplainFiles(
        pattern,
        handler,
        output,
        output_format=output_format,
        num_shards=num_shards,
        overlays=overlays,
    )
    pipeline.run().wait_until_finish()
    import json

    return json.loads(out.read_bytes(f"{output}-manifest.json"))
