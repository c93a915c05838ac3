"""Training in separate processes: two hosts (jax.distributed over 127.0.0.1 with gloo CPU
collectives) against one, and a SIGTERM sent to a running train process."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from resize_jax.train import checkpoint
from resize_jax.train.writer import read_metrics

WORKER = os.path.join(os.path.dirname(__file__), "train_worker.py")
TIMEOUT_S = 300


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(workdir) -> np.ndarray:
    return np.array([r["train/loss"] for r in read_metrics(str(workdir)) if "train/loss" in r])


def test_two_processes_of_two_devices_match_one_process_of_four(tmp_path):
    single = subprocess.run(
        [sys.executable, WORKER, str(tmp_path / "single"), "5"],
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path / "multi"), "5", str(i), "2", str(port)],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=TIMEOUT_S) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
        assert "DONE preempted=False" in out
    assert "process 1 of 2" in outputs[1][1]
    np.testing.assert_allclose(_losses(tmp_path / "multi"), _losses(tmp_path / "single"), atol=1e-5)
    # Both processes evaluated the whole split together, each example once.
    top1 = [out.split("eval_top1=")[1].strip() for out, _ in outputs]
    assert top1[0] == top1[1]


def test_sigterm_saves_the_current_step_and_exits_cleanly(tmp_path):
    workdir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, WORKER, str(workdir), "100000"],
        env=_env(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "step 3/100000" in line:
            process.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    out, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, out[-3000:]
    assert "DONE preempted=True" in out
    with checkpoint.make_manager(str(workdir)) as manager:
        step = manager.latest_step()
    logged = [r["step"] for r in read_metrics(str(workdir)) if "train/loss" in r]
    assert step is not None and step >= 3 and step == logged[-1]
