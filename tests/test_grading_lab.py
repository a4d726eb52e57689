"""`make lab`: a real JupyterLab server on loopback serves the exercises, with nbgrader's
Validate button (its lab extension and its server handler) working."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading_lab")]  # one server, one xdist worker
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, token: str, method: str = "GET", data: dict | None = None, timeout: float = 10):
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = _free_port(), uuid.uuid4().hex
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    # The command `make lab` runs (from the repository root), plus a fixed port and token.
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--notebook-dir=exercises", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
           "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), PYDEVD_DISABLE_FILE_VALIDATION="1")
    log = open(runtime / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            _call(f"{base}/api/status", token)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (runtime / "lab.log").read_text()[-3000:])
            time.sleep(1)
    yield base, token, proc
    if proc.poll() is None:
        proc.kill()
    log.close()


def test_exercise_opens_through_the_contents_api(lab):
    base, token, _ = lab
    status, model = _call(f"{base}/api/contents/attention/attention.ipynb", token)
    assert status == 200 and model["type"] == "notebook"
    grade_ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in model["content"]["cells"]]
    assert "test_causal_mask_visible" in grade_ids


def test_nbgrader_validate_extension_is_loaded_and_answers(lab):
    base, token, _ = lab
    _, extensions = _call(f"{base}/lab/api/extensions", token)
    nbgrader_ext = [e for e in extensions if "nbgrader" in e["name"]]  # listed as "jupyter-nbgrader"
    assert nbgrader_ext and all(e["enabled"] and e["installed"] for e in nbgrader_ext)
    _, version = _call(f"{base}/nbgrader_version?version={__import__('nbgrader').__version__}", token)
    assert version["success"]
    status, result = _call(f"{base}/assignments/validate", token, "POST",
                           {"path": "attention/attention.ipynb"}, timeout=300)
    assert status == 200 and result["success"], result
    failed = result["value"]["failed"]  # the blank exercise fails every visible test
    assert any("NotImplementedError" in f["raw_error"] for f in failed)


def test_server_shuts_down_cleanly(lab):
    base, token, proc = lab
    _call(f"{base}/api/shutdown", token, "POST")
    assert proc.wait(timeout=60) == 0
