"""What an operator does with an export: `keras-interp export`, then
`saved_model_cli show/run`, then a TF Serving REST body converted with
tensorflow-serving-api's request protos, answered and turned back to JSON."""

from __future__ import annotations

import base64
import io
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from keras_interp.cli import main
from keras_interp.images import load_image
from tests.serving import helpers
from tests.serving.helpers import close

SMOOTH = "smooth(gradients, repetitions=2, seed=0)"
CLI = pathlib.Path(sys.executable).with_name("saved_model_cli")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operators")
    model = helpers.flat_model(keras)
    model.save(tmp / "model.keras")
    argv = ["export", str(tmp / "model.keras"), str(tmp / "explainer" / "1")]
    argv += ["--method", "gradcam", "--method", SMOOTH, "--preprocessing", "tf"]
    return tmp, model, argv + ["--overlay", "--top-k", "2"]


def test_export_command_prints_the_signatures(exported, capsys):
    tmp, _, argv = exported
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    for line in (
        "signature 'serving_default':",
        "input images float32 (None, 12, 12, 3)",
        "output maps_smooth_gradients_repetitions_2_seed_0 float32 (None, 12, 12, 2)",
        "signature 'explain_images':",
        "input image_bytes string (None,)",
        "output overlay_png_bytes string (None,)",
    ):
        assert line in out
    assert (tmp / "explainer" / "1" / "saved_model.pb").exists()


def test_export_command_reports_bad_options(exported, capsys):
    tmp, _, _ = exported
    argv = ["export", str(tmp / "model.keras"), str(tmp / "bad"), "--method", "gradcan"]
    assert main(argv) == 2
    assert "Did you mean gradcam" in capsys.readouterr().err


def _cli(*args: str) -> str:
    result = subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_show_and_run(exported):
    tmp, model, _ = exported
    directory = str(tmp / "explainer" / "1")
    shown = _cli("show", "--dir", directory, "--all")
    for name in ("serving_default", "explain", "explain_classes", "explain_images"):
        assert f"signature_def['{name}']:" in shown
    for output in ("maps_gradcam", "logits", "probabilities", "overlay_png_bytes"):
        assert f"outputs['{output}']" in shown
    x = helpers.images(batch=2)
    np.save(tmp / "x.npy", x)
    _cli(
        "run",
        "--dir",
        directory,
        "--tag_set",
        "serve",
        "--signature_def",
        "explain",
        "--inputs",
        f"images={tmp / 'x.npy'}",
        "--outdir",
        str(tmp / "cli_out"),
        "--overwrite",
    )
    classes = np.load(tmp / "cli_out" / "classes.npy")
    _, maps = helpers.reference(model, "gradcam", x, classes, {})
    close(np.load(tmp / "cli_out" / "maps_gradcam.npy"), maps, "saved_model_cli run")


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 14, 3), np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_rest_request_to_protos_and_response_to_json(exported):
    from google.protobuf import json_format
    from tensorflow_serving.apis import predict_pb2

    tmp, model, _ = exported
    files = [_png(0), _png(1)]
    body = json.dumps(
        {
            "signature_name": "explain_images",
            "instances": [{"b64": base64.b64encode(f).decode()} for f in files],
        }
    )
    # What TF Serving's REST front end does with the row format: one input,
    # so each instance is its value; {"b64": ...} is bytes.
    parsed = json.loads(body)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "explainer"
    request.model_spec.signature_name = parsed["signature_name"]
    values = [base64.b64decode(item["b64"]) for item in parsed["instances"]]
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(values, tf.string))
    (tmp / "request.pb").write_bytes(request.SerializeToString())
    job = {
        "dir": str(tmp / "explainer" / "1"),
        "signature": "explain_images",
        "request": str(tmp / "request.pb"),
        "response": str(tmp / "response.pb"),
    }
    helpers.run_fresh([job], tmp)
    response = predict_pb2.PredictResponse()
    response.ParseFromString((tmp / "response.pb").read_bytes())
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    # The REST response: one object per instance, `_bytes` outputs as base64.
    def row(i: int) -> dict:
        return {
            key: {"b64": base64.b64encode(value[i]).decode()}
            if key.endswith("_bytes")
            else value[i].tolist()
            for key, value in outputs.items()
        }

    text = json.dumps({"predictions": [row(i) for i in range(len(files))]})
    predictions = json.loads(text)["predictions"]
    for key, value in outputs.items():
        if key.endswith("_bytes"):
            decoded = [base64.b64decode(p[key]["b64"]) for p in predictions]
            assert decoded == list(value)
        else:
            back = np.array([p[key] for p in predictions], value.dtype)
            np.testing.assert_array_equal(back, value)
    # The protos themselves round-trip through JSON too.
    again = json_format.Parse(json_format.MessageToJson(response), type(response)())
    assert again == response
    # And the answer is the model's: the top classes of the prepared images.
    x = np.stack([load_image(io.BytesIO(f), 12) for f in files]) * 2 - 1
    top = np.argsort(-np.asarray(model(x)), axis=1)[:, :2]
    np.testing.assert_array_equal(outputs["classes"], top)
    overlay = PIL.Image.open(io.BytesIO(outputs["overlay_png_bytes"][0]))
    assert overlay.size == (12, 12)
