"""Helpers for the course hub's tests: start JupyterHub with deploy/jupyterhub's config on
loopback, call it, and stop it with everything it started."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB_DIR = REPO / "deploy" / "jupyterhub"
CONFIG = HUB_DIR / "jupyterhub_config.py"
BIN = Path(sys.executable).parent
PROXY = BIN.parent / "node" / "bin" / "configurable-http-proxy"
COURSE = "transformers-piece-by-piece"


def why_not(root: bool) -> str | None:
    """Why the hub cannot run here, or None."""
    if root and (not sys.platform.startswith("linux") or os.geteuid() != 0):
        return "needs root on Linux: the hub starts each user's server as that system user (useradd, setuid)"
    if root and not all(shutil.which(tool) for tool in ("useradd", "userdel", "runuser")):
        return "needs useradd, userdel and runuser to make the class's system users"
    if not PROXY.exists() and not shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy is missing: install npm and run `make install` (it fills .venv/node)"
    try:
        import jupyterhub  # noqa: F401
        import nativeauthenticator  # noqa: F401
    except ImportError as err:
        return f"the [hub] extra is not installed ({err.name}): run `make install`"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, token: str | None = None, method: str = "GET", data=None, timeout: float = 60):
    """(status, body) of one request; the body is parsed JSON when it is JSON, 0 when refused."""
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, ConnectionError) as err:  # not listening (yet)
        return 0, str(err)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def wait(what: str, check, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s; the hub's log ends:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def launch(base: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """Start the hub with its state in ``base``; return it and its URL once it answers through the proxy."""
    port = free_port()
    env = dict(os.environ, COURSE_HUB_STATE=str(base / "state"), COURSE_HUB_PORT=str(port),
               COURSE_HUB_API_PORT=str(free_port()), COURSE_HUB_PROXY_API_PORT=str(free_port()),
               COURSE_HUB_CREATE_USERS="0", **settings)
    log = base / "hub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(CONFIG)], cwd=base, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait("the hub did not answer through the proxy",
             lambda: proc.poll() is None and call(f"{url}/hub/api/", timeout=5)[0] == 200, 90, log)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen, uids: set[int] = frozenset()) -> None:
    """Stop the hub (it stops the proxy and every server), then whatever the test users still run."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(re.search(r"^Uid:\s+(\d+)", status.read_text(), re.M).group(1))
            if uid in uids:
                os.kill(int(status.parent.name), signal.SIGKILL)
        except (OSError, AttributeError):
            continue


def log_tail(base: Path) -> str:
    log = base / "hub.log"
    return "the hub's log ends:\n" + (log.read_text()[-6000:] if log.exists() else "(no log)")
