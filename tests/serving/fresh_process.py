"""Run exported signatures in a process that never imports keras_interp.

Usage: `python fresh_process.py JOBS.json`. Each job names an export
directory, a signature, its inputs (an `.npz` file, or a serialized
`PredictRequest` as TF Serving receives it) and where to write the outputs
(an `.npz`, or a serialized `PredictResponse`). The script checks at the end
that keras_interp was never imported.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def run(job: dict, loaded: dict) -> None:
    if job["dir"] not in loaded:
        loaded[job["dir"]] = tf.saved_model.load(job["dir"])
    signature = loaded[job["dir"]].signatures[job["signature"]]
    if job.get("request"):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        with open(job["request"], "rb") as file:
            request.ParseFromString(file.read())
        assert request.model_spec.signature_name == job["signature"]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    else:
        inputs = dict(np.load(job["inputs"], allow_pickle=True))
    outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    if job.get("response"):
        from tensorflow_serving.apis import predict_pb2

        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        with open(job["response"], "wb") as file:
            file.write(response.SerializeToString())
    else:
        np.savez(job["outputs"], **{k: v.numpy() for k, v in outputs.items()})


def main(path: str) -> int:
    with open(path) as file:
        jobs = json.load(file)
    loaded: dict = {}
    for job in jobs:
        run(job, loaded)
    imported = sorted(m for m in sys.modules if m.split(".")[0] == "keras_interp")
    if imported:
        print(f"keras_interp was imported: {imported}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
