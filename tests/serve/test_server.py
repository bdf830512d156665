"""run_server in a real process: serves over HTTP, and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import Packages

SCRIPT = """
import socket, sys
from gyre.core.artifacts import ArtifactStore
from gyre.models import load_model
from gyre.serve import ModelRef, create_app, run_server

store = ArtifactStore.from_url(sys.argv[1])
app = create_app(
    "bikes",
    lambda: ModelRef("bike-model", 1, sys.argv[2]),
    lambda ref: load_model(store, ref.package_id),
    poll_interval=0.1,
)
run_server(app, log_level="info", sock=socket.socket(fileno=int(sys.argv[3])))
print("server exited", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_server_serves_then_shuts_down_gracefully(
    packages: Packages, sig: signal.Signals
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, packages.store.url, packages.v1, str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sock.close()
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.1)
            body = {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [0.5]},
                    {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
                ]
            }
            assert client.post("/v2/models/bikes/infer", json=body).status_code == 200
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "Shutting down" in output
    assert "server exited" in output
