"""`keras-interp explain-files` (in process, DirectRunner)."""

from __future__ import annotations

import json
import pathlib

import pytest

pytest.importorskip("apache_beam")

from beam_helpers import save_model  # noqa: E402

from keras_interp import cli  # noqa: E402
from keras_interp.beam.command import _image_size  # noqa: E402


def test_explain_files_command_passes_beam_options_and_reports_counts(tmp_path, capsys):
    import numpy as np
    import PIL.Image

    model = save_model(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        pixels = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(images / f"{i}.png")
    (images / "broken.png").write_bytes(b"not a png")
    output = str(tmp_path / "out" / "run")
    status = cli.main(
        [
            "explain-files",
            str(images / "*.png"),
            "--model",
            model,
            "--method",
            "gradcam",
            "--output",
            output,
            "--format",
            "jsonl",
            "--num-shards",
            "1",
            "--targets",
            "2",
            "--direct_running_mode=in_memory",  # a Beam option, passed through
        ]
    )
    assert status == 0
    assert "explained 4 of 5 files, 1 failed" in capsys.readouterr().out
    manifest = json.loads(pathlib.Path(f"{output}-manifest.json").read_text())
    assert manifest["counts"] == {"read": 5, "explained": 4, "failed": 1}
    assert manifest["targets"] == [2] and manifest["output_format"] == "jsonl"
    rows = pathlib.Path(f"{output}-results-00000-of-00001.jsonl").read_text()
    assert [json.loads(r)["explained_class"] for r in rows.splitlines()] == [2] * 4


def test_image_size_argument():
    assert _image_size("8") == (8, 8)
    assert _image_size("6x10") == (6, 10)
    for bad in ("0", "8x", "axb", "1x2x3"):
        with pytest.raises(Exception, match="HEIGHTxWIDTH"):
            _image_size(bad)


def test_other_commands_still_refuse_unknown_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["layers", "m.keras", "--direct_num_workers=2"])
    assert "unrecognized arguments" in capsys.readouterr().err
