"""The explain-files pipeline on the DirectRunner, in process and with 2 workers."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")

from beam_helpers import SIZE, save_model, write_images  # noqa: E402

import keras_interp  # noqa: E402
from keras_interp.beam import ExplainFiles, ExplainModelHandler, explain_files  # noqa: E402
from keras_interp.beam.summary import map_summary  # noqa: E402
from keras_interp.images import load_image  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beam")
    model_path = save_model(folder)
    good, corrupt = write_images(folder / "images")
    return folder, model_path, good, corrupt


@pytest.fixture(scope="module")
def reference(files):
    """`keras_interp.gradcam` on the same prepared images, as explain() runs it."""
    _, model_path, good, _ = files
    model = keras_interp.beam.load_model(model_path)
    x = np.stack([load_image(path, SIZE) for path in good])
    scores = prepare(model, "gradcam")(x)[0].numpy()
    classes = scores.argmax(axis=1)
    logits, maps = keras_interp.gradcam(model, x, classes, verbose=0)
    return {
        "x": x,
        "scores": scores,
        "classes": classes,
        "logits": logits,
        "maps": maps,
    }


def _run(files, output, *, args=(), **kwargs):
    folder, model_path, _, _ = files
    options = beam.options.pipeline_options.PipelineOptions(list(args))
    pipeline = beam.Pipeline(options=options)
    handler = ExplainModelHandler(model_path, "gradcam", max_batch_size=16)
    _ = pipeline | ExplainFiles(str(folder / "images" / "*"), handler, output, **kwargs)
    result = pipeline.run()
    result.wait_until_finish()
    return result


@pytest.fixture(scope="module")
def first_run(files):
    output = str(files[0] / "out" / "run")
    result = _run(files, output, num_shards=2, overlays=True)
    return output, result


def _outputs(output: str) -> dict[str, bytes]:
    folder = pathlib.Path(output).parent
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _read_results(output: str):
    import pandas as pd

    manifest = json.loads(pathlib.Path(f"{output}-manifest.json").read_text())
    tables = [f for f in manifest["files"] if "-results-" in f]
    if manifest["output_format"] == "parquet":
        rows = pd.concat([pd.read_parquet(f) for f in tables], ignore_index=True)
    else:
        rows = pd.concat(
            [pd.read_json(f, lines=True) for f in tables], ignore_index=True
        )
    maps = {}
    for name in (f for f in manifest["files"] if f.endswith(".npz")):
        with np.load(name) as archive:
            for path, classes, heatmaps in zip(
                archive["paths"], archive["classes"], archive["maps"]
            ):
                maps[str(path)] = (classes, heatmaps)
    return manifest, rows, maps


def _check_against_reference(output, files, reference):
    _, _, good, _ = files
    manifest, rows, maps = _read_results(output)
    assert manifest["counts"] == {"read": 67, "explained": 64, "failed": 3}
    assert manifest["complete"] is True
    assert sorted(rows["path"]) == sorted(good) == sorted(maps)
    rows = rows.set_index("path").loc[good]
    np.testing.assert_array_equal(rows["predicted_class"], reference["classes"])
    np.testing.assert_array_equal(rows["explained_class"], reference["classes"])
    np.testing.assert_allclose(
        rows["explained_logit"], reference["logits"][:, 0], rtol=1e-5, atol=1e-6
    )
    scores = reference["scores"]
    softmax = np.exp(scores - scores.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(rows["probability"], softmax.max(1), rtol=1e-5)
    got = np.stack([maps[path][1] for path in good])
    np.testing.assert_allclose(got, reference["maps"], rtol=1e-5, atol=1e-6)
    for i in (0, 40):
        expected = map_summary(reference["maps"][i, ..., 0])
        assert rows.iloc[i]["peak_row"] == expected["peak_row"]
        assert rows.iloc[i]["peak_col"] == expected["peak_col"]
        assert rows.iloc[i]["mass_top_left"] == pytest.approx(
            expected["mass_top_left"], rel=1e-4
        )
    assert set(rows["image_height"]) == {10, 12}
    return manifest, rows


def test_results_equal_explain_on_the_same_prepared_images(first_run, files, reference):
    output, _ = first_run
    _, rows = _check_against_reference(output, files, reference)
    overlay = pathlib.Path(rows.iloc[0]["overlay"])
    assert overlay.read_bytes()[:4] == b"\x89PNG"
    assert len(list(overlay.parent.glob("*.png"))) == 64


def test_corrupt_files_go_to_the_dead_letter_file_with_their_error(first_run, files):
    output, _ = first_run
    _, _, _, corrupt = files
    lines = pathlib.Path(f"{output}-failed.jsonl").read_text().splitlines()
    failures = [json.loads(line) for line in lines]
    assert [f["path"] for f in failures] == sorted(corrupt)
    assert {f["stage"] for f in failures} == {"decode"}
    for failure in failures:
        assert failure["error"].startswith("ValueError: Could not read an image from")
        assert failure["path"] in failure["error"]
        assert " at 0x" not in failure["error"]  # no object addresses
    truncated = next(f for f in failures if "truncated" in f["path"])
    assert "truncated" in truncated["error"]


def test_counts_are_beam_metrics(first_run):
    _, result = first_run
    found = result.metrics().query(
        beam.metrics.MetricsFilter().with_namespace("keras_interp")
    )
    counts = {c.key.metric.name: c.committed for c in found["counters"]}
    assert counts == {"read": 67, "explained": 64, "failed": 3}


def test_a_second_run_writes_the_same_files(first_run, files):
    output, _ = first_run
    before = _outputs(output)
    _run(files, output, num_shards=2, overlays=True)
    after = _outputs(output)
    assert sorted(after) == sorted(before)
    assert len(after) == 64 + 6
    for name, content in before.items():
        assert after[name] == content, name


def test_json_lines_output_through_explain_files(files, reference):
    folder, model_path, _, _ = files
    output = str(folder / "jsonl" / "run")
    manifest = explain_files(
        str(folder / "images" / "*"),
        model_path,
        "gradcam",
        output,
        output_format="jsonl",
        num_shards=1,
    )
    assert manifest["files"][-1].endswith("run-results-00000-of-00001.jsonl")
    _check_against_reference(output, files, reference)


def test_no_image_size_and_no_static_input_size_is_refused(files):
    import keras

    def loader():
        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    handler = ExplainModelHandler(loader, "gradients")
    with pytest.raises(ValueError, match="pass `image_size`"):
        ExplainFiles("*.png", handler, "out")


@pytest.mark.slow
def test_multi_process_direct_runner_with_two_workers(files, reference):
    folder = files[0]
    output = str(folder / "multi" / "run")
    args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    _run(files, output, args=args, num_shards=3)
    _check_against_reference(output, files, reference)
    assert len(pathlib.Path(f"{output}-failed.jsonl").read_text().splitlines()) == 3


def test_a_batch_the_model_fails_on_goes_to_the_dead_letter_file(files, tmp_path):
    _, model_path, good, _ = files
    folder = tmp_path / "few"
    folder.mkdir()
    for path in good[:3]:
        (folder / pathlib.Path(path).name).write_bytes(pathlib.Path(path).read_bytes())
    output = str(tmp_path / "out" / "run")
    manifest = explain_files(
        str(folder / "*.png"), model_path, "gradcam", output, targets=7, num_shards=1
    )
    assert manifest["counts"] == {"read": 3, "explained": 0, "failed": 3}
    assert manifest["complete"] is True
    lines = pathlib.Path(f"{output}-failed.jsonl").read_text().splitlines()
    failures = [json.loads(line) for line in lines]
    assert [f["stage"] for f in failures] == ["inference"] * 3
    assert all(
        "`targets` must be below the model's 3 units" in f["error"] for f in failures
    )
    _, rows, maps = _read_results(output)
    assert len(rows) == 0 and maps == {}
