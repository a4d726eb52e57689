"""`make lab`: a real JupyterLab server on loopback serves the exercises, with nbgrader's
Validate button (its lab extension and its server handler) working, in Korean when the
locale asks for it (LANG=ko_KR.UTF-8 make lab)."""
from __future__ import annotations

import json
import os
import shutil
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
    # The command `LANG=ko_KR.UTF-8 make lab` runs, plus a fixed port and token; the language
    # setting goes to a folder of the test's own.
    from course_lib.lab import lab_command

    cmd = lab_command(dict(os.environ, LANG="ko_KR.UTF-8"), settings_root=runtime / "settings") + [
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0"]
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


def test_korean_locale_shows_jupyterlab_in_korean(lab):
    base, token, _ = lab
    _, setting = _call(f"{base}/lab/api/settings/@jupyterlab/translation-extension:plugin", token)
    assert setting["settings"]["locale"] == "ko_KR"
    _, pack = _call(f"{base}/lab/api/translations/ko_KR", token)
    assert pack["data"]["jupyterlab"]["Edit"] == ["편집"], pack["message"]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{base}/lab?token={token}")
        page.wait_for_selector(".lm-MenuBar-itemLabel", timeout=120000)
        menus = " ".join(page.locator(".lm-MenuBar-itemLabel").all_inner_texts())
        browser.close()
    assert "파일" in menus and "편집" in menus, f"the menu bar reads {menus!r}"


def test_server_shuts_down_cleanly(lab):
    base, token, proc = lab
    _call(f"{base}/api/shutdown", token, "POST")
    assert proc.wait(timeout=60) == 0
