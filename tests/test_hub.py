"""The course hub for real (deploy/jupyterhub/): JupyterHub and configurable-http-proxy on
loopback, one system user per person, nbgrader's exchange, and one assignment from release to
feedback. The learners work only through the hub: a token from its REST API, their server
started by the spawner, nbgrader's handlers on that server behind the proxy."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hub_helpers import BIN, COURSE, HUB_DIR, REPO, call, launch, log_tail, stop, wait, why_not
from tests.nbgrader_helpers import SOLUTIONS, hand_in, notebook_points, replace_blocks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub")]
ASSIGNMENT = "attention"
UNSCALED = """\
scores = q @ k.transpose(-2, -1)  # forgot the 1/sqrt(d) scale
weights = stable_softmax(scores, mask)
return weights @ v, weights
"""


def _as(user: str, *cmd: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command as a system user (what that person could do from a terminal)."""
    settings = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(["runuser", "-u", user, "--", "env", *settings, *cmd], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@dataclass
class Hub:
    base: Path
    url: str
    exchange: Path
    instructor: str
    learners: list[str]
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, path: str, user: str, method: str = "GET", data=None):
        return call(f"{self.url}/hub/api/{path}", self.tokens[user], method, data)

    def server(self, user: str, path: str, method: str = "GET", data=None, timeout: float = 120):
        """A request to the user's own server, through the proxy."""
        return call(f"{self.url}/user/{user}/{path}", self.tokens[user], method, data, timeout)

    def home(self, user: str) -> Path:
        return self.base / "home" / user

    def role_env(self, role: str) -> dict:
        """The environment the spawner gives a server of that role (its terminal has the same)."""
        return {"JUPYTER_CONFIG_PATH": str(HUB_DIR / "roles" / role), "COURSE_EXCHANGE": str(self.exchange),
                "PATH": f"{BIN}:/usr/bin:/bin", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}

    def course_root(self) -> Path:
        return self.home(self.instructor) / COURSE


def _posix_acl():
    spec = importlib.util.spec_from_file_location("posix_acl", HUB_DIR / "posix_acl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _open_the_way(uids: set[int]) -> list[tuple[Path, int]]:
    """Let the test's users pass every closed folder on the way to the course's Python.

    On CI's machines the interpreter behind .venv is pyenv's, under /root (mode 700): a class's
    server builds .venv from a Python everyone can run instead (the hub warns when it cannot).
    Here each closed folder gets a traverse-only ACL entry for these users, taken back at the end.
    """
    acl, granted = _posix_acl(), []
    targets = {Path(os.path.realpath(sys.executable)), BIN.resolve(), REPO.resolve()}
    folders = {f for t in targets for f in t.parents if not f.stat().st_mode & 0o001}
    for folder in sorted(folders):
        for uid in sorted(uids):
            acl.grant(folder, acl.EXECUTE, uid=uid)
            granted.append((folder, uid))
    return granted


def _add_user(name: str, home: Path) -> int:
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", name],
                   check=True, capture_output=True)
    home.chmod(0o700)
    return home.stat().st_uid


def _instructor_course(hub: Hub) -> None:
    """The instructor's course folder: the repository's nbgrader set-up and the one assignment."""
    root = hub.course_root()
    root.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(REPO / folder / ASSIGNMENT, root / folder / ASSIGNMENT)
    subprocess.run(["chown", "-R", f"{hub.instructor}:", str(root)], check=True)


@pytest.fixture(scope="module")
def hub():
    reason = why_not(root=True)
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    base = Path(tempfile.mkdtemp(prefix="course-hub-"))
    base.chmod(0o755)  # learners reach the exchange inside it
    (base / "home").mkdir(mode=0o755)
    hub = Hub(base, "", base / "exchange", f"hubteach{tag}", [f"hubright{tag}", f"hubwrong{tag}"])
    shared, admin = uuid.uuid4().hex, uuid.uuid4().hex + uuid.uuid4().hex
    uids: set[int] = set()
    proc, granted = None, []
    try:
        for name in [hub.instructor, *hub.learners]:
            uids.add(_add_user(name, hub.home(name)))
        granted = _open_the_way(uids)
        _instructor_course(hub)
        proc, hub.url = launch(base, COURSE_HUB_AUTH="shared", COURSE_HUB_SHARED_PASSWORD=shared,
                               COURSE_HUB_ADMIN_PASSWORD=admin, COURSE_INSTRUCTORS=hub.instructor,
                               COURSE_EXCHANGE=str(hub.exchange))
        # Log in through the REST API: the password goes to the authenticator, a token comes back.
        login = {hub.instructor: admin, **{name: shared for name in hub.learners}}
        status, body = call(f"{hub.url}/hub/api/users/{hub.instructor}/tokens", method="POST",
                            data={"auth": {"username": hub.instructor, "password": admin}})
        assert status == 201, body
        hub.tokens[hub.instructor] = body["token"]
        status, body = hub.api("users", hub.instructor, "POST", {"usernames": hub.learners})  # the class list
        assert status == 201, body
        for name in hub.learners:
            wrong = call(f"{hub.url}/hub/api/users/{name}/tokens", method="POST",
                         data={"auth": {"username": name, "password": "not-the-password"}})[0]
            assert wrong == 403, "a wrong password got a token"
            status, body = call(f"{hub.url}/hub/api/users/{name}/tokens", method="POST",
                                data={"auth": {"username": name, "password": login[name]}})
            assert status == 201, body
            hub.tokens[name] = body["token"]
        for name in hub.tokens:  # every server starts at once; the spawner runs each as its user
            status, body = hub.api(f"users/{name}/server", name, "POST")
            assert status in (201, 202), body
        for name in hub.tokens:
            ready = lambda: hub.api(f"users/{name}", name)[1].get("servers", {}).get("", {}).get("ready")  # noqa: E731
            wait(f"{name}'s server did not start", ready, 120, base / "hub.log")
        yield hub
    except BaseException:
        print(log_tail(base))
        raise
    finally:
        if proc is not None:
            stop(proc, uids)
        for folder, uid in granted:
            _posix_acl().revoke(folder, uid=uid)
        for name in [hub.instructor, *hub.learners]:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _page_config(hub: Hub, user: str) -> dict:
    status, html = hub.server(user, "lab")
    assert status == 200, html
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_each_role_gets_its_tools(hub):
    instructor_tools = ["@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                        "@jupyter/nbgrader:course-list"]
    assert not set(instructor_tools) & set(_page_config(hub, hub.instructor)["disabledExtensions"])
    assert hub.server(hub.instructor, "formgrader")[0] == 200
    status, groups = hub.api(f"users/{hub.instructor}", hub.instructor)
    assert f"formgrade-{COURSE}" in groups["groups"], groups
    for name in hub.learners:
        disabled = _page_config(hub, name)["disabledExtensions"]
        assert set(instructor_tools) <= set(disabled), disabled
        for tool in ("assignment-list", "validate-assignment", "menu"):
            assert f"@jupyter/nbgrader:{tool}" not in disabled
        assert hub.server(name, "formgrader")[0] == 404, "a learner's server serves the formgrader"
        assert hub.server(name, "formgrader/api/assignments")[0] == 404
        assert hub.server(name, f"assignments?course_id={COURSE}")[0] == 200
        assert f"nbgrader-{COURSE}" in hub.api(f"users/{name}", name)[1]["groups"]
        # a learner's token opens only their own server
        assert hub.server(name, "api/status")[0] == 200
        other = next(n for n in hub.learners if n != name)
        assert call(f"{hub.url}/user/{other}/api/status", hub.tokens[name])[0] in (403, 404)


def _assignment(hub: Hub, user: str, action: str) -> list[dict]:
    status, body = hub.server(user, f"assignments/{action}", "POST",
                              {"course_id": COURSE, "assignment_id": ASSIGNMENT})
    assert status == 200 and body["success"], f"{action} for {user}: {status} {body}"
    return [a for a in body["value"] if a["assignment_id"] == ASSIGNMENT]


def test_an_assignment_from_release_to_feedback(hub, tmp_path):
    teacher, course = hub.instructor, hub.course_root()
    env = hub.role_env("instructor")
    run = _as(teacher, str(BIN / "nbgrader"), "release_assignment", ASSIGNMENT, env=env, cwd=course)
    assert run.returncode == 0, run.stderr

    # Each learner fetches, answers (one right, one with the 1/sqrt(d) scale missing) and submits.
    solution = SOLUTIONS / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    wrong = replace_blocks(solution, {"attention": [UNSCALED]}, tmp_path / "unscaled.ipynb")
    answers = dict(zip(hub.learners, [solution, wrong]))
    for name, source in answers.items():
        status, listed = hub.server(name, f"assignments?course_id={COURSE}")
        assert listed["success"] and [a["status"] for a in listed["value"]] == ["released"], listed
        assert [a["status"] for a in _assignment(hub, name, "fetch")] == ["fetched"]
        notebook = json.loads(hand_in(ASSIGNMENT, source, tmp_path / name / "nb.ipynb").read_text())
        status, body = hub.server(name, f"api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", "PUT",
                                  {"type": "notebook", "format": "json", "content": notebook})
        assert status in (200, 201), body
        assert "submitted" in [a["status"] for a in _assignment(hub, name, "submit")]

    inbound = hub.exchange / COURSE / "inbound"
    right, wrong_one = hub.learners
    mine = next(inbound.glob(f"{right}+{ASSIGNMENT}+*"))
    assert _as(right, "cat", str(mine / f"{ASSIGNMENT}.ipynb")).returncode == 0
    assert _as(wrong_one, "cat", str(mine / f"{ASSIGNMENT}.ipynb")).returncode != 0, \
        "a learner can read another learner's submission"
    assert _as(wrong_one, "ls", str(inbound)).returncode != 0, "a learner can list the submissions"

    # The instructor collects, grades with `course grade` and sends the feedback back.
    for cmd in ([str(BIN / "nbgrader"), "collect", ASSIGNMENT],
                [str(BIN / "course"), "grade", ASSIGNMENT, "--submissions", "submitted", "--workers", "2",
                 "--timeout", "120", "--no-progress"],
                [str(BIN / "python"), str(HUB_DIR / "release_feedback.py"), ASSIGNMENT]):
        run = _as(teacher, *cmd, env=env, cwd=course)
        assert run.returncode == 0, f"{cmd[:2]}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    points = notebook_points(solution)
    total = sum(points.values())
    part = lambda name: sum(p for gid, p in points.items() if gid.startswith(f"test_{name}_"))  # noqa: E731
    expected = {right: total, wrong_one: part("stable_softmax") + part("causal_mask")}
    assert 0 < expected[wrong_one] < total
    outbound = hub.exchange / COURSE / "feedback"
    for name in hub.learners:
        result = json.loads((course / "feedback" / name / ASSIGNMENT / f"{ASSIGNMENT}.json").read_text())
        assert (result["score"], result["max_score"]) == (expected[name], total), result
        # The learner fetches the page through their server and reads their own score.
        _assignment(hub, name, "fetch_feedback")
        status, listing = hub.server(name, f"api/contents/{ASSIGNMENT}/feedback")
        assert status == 200 and len(listing["content"]) == 1, listing
        stamp = listing["content"][0]["path"]
        status, page = hub.server(name, f"api/contents/{urllib.parse.quote(stamp)}/{ASSIGNMENT}.html")
        assert status == 200, page
        assert f"Score: {expected[name]:g} / {total:g}" in page["content"]
        other = next(n for n in hub.learners if n != name)
        assert name in page["content"] and other not in page["content"]

    # Released pages: each readable by its learner only, and none can be listed.
    pages = sorted(outbound.glob("*.html"))
    assert len(pages) == 2
    for released in pages:
        owner = next(n for n in hub.learners if _as(n, "cat", str(released)).returncode == 0)
        other = next(n for n in hub.learners if n != owner)
        assert owner in released.read_text()
        assert _as(other, "cat", str(released)).returncode != 0, "a learner can read another's feedback"
    assert _as(wrong_one, "ls", str(outbound)).returncode != 0, "a learner can list the feedback"
