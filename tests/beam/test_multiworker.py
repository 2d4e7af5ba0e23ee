"""`explain(..., strategy=MultiWorkerMirroredStrategy())` over two local processes.

Two worker processes (TF_CONFIG on 127.0.0.1 ports) explain the same images;
each must get back the same logits and maps as one process without a strategy.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import multiworker_worker
import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("multiworker_worker.py")
#: Seconds a worker may take (TensorFlow's start-up included); the workers
#: also end themselves after `multiworker_worker.WATCHDOG` seconds.
TIMEOUT = 240


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _environment(tf_config: dict | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _run_workers(tmp_path: pathlib.Path) -> list[dict[str, np.ndarray]]:
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes, outputs = [], []
    for index in range(2):
        config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        out = tmp_path / f"worker{index}.npz"
        outputs.append(out)
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(out)],
                env=_environment(config),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    logs = []
    try:
        for process in processes:
            logs.append(
                process.communicate(timeout=TIMEOUT)[0].decode(errors="replace")
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    return [dict(np.load(out)) for out in outputs]


@pytest.mark.slow
def test_two_local_workers_return_what_one_process_returns(tmp_path):
    single = tmp_path / "single.npz"
    multiworker_worker.main(str(single))  # One process, no strategy.
    want = dict(np.load(single))
    assert want["maps"].shape == (7, 8, 8, 2)
    for got in _run_workers(tmp_path):
        assert got["maps"].shape == want["maps"].shape
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["maps"], want["maps"], rtol=1e-5, atol=1e-6)
