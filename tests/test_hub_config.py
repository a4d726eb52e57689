"""The course hub's configuration (deploy/jupyterhub/jupyterhub_config.py): the class's own
log-in, NativeAuthenticator, for real, and clear errors for bad settings."""
from __future__ import annotations

import http.cookiejar
import importlib.util
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.hub_helpers import BIN, CONFIG, COURSE, HUB_DIR, REPO, call, launch, log_tail, stop, why_not


class _Browser:
    """Forms with the hub's XSRF token and cookies, like a browser; redirects are not followed."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  self._NoRedirect)

    def open(self, path: str, form: dict | None = None) -> tuple[int, str, str]:
        """(status, page, redirect location) of a GET, or of a POST of ``form``."""
        if form is not None:
            _, page, _ = self.open(path)
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
            form = urllib.parse.urlencode({**form, "_xsrf": xsrf}).encode()
        try:
            with self.opener.open(f"{self.url}/hub/{path}", data=form, timeout=60) as response:
                return response.status, response.read().decode(), ""
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace"), err.headers.get("Location", "")


@pytest.mark.slow
@pytest.mark.xdist_group("hub")
def test_learners_sign_up_and_an_instructor_approves_them():
    reason = why_not(root=False)
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="course-hub-native-"))
    teacher, learner = "teach" + uuid.uuid4().hex[:6], "learn" + uuid.uuid4().hex[:6]
    password = {teacher: uuid.uuid4().hex, learner: uuid.uuid4().hex}
    proc = None
    try:
        proc, url = launch(base, COURSE_HUB_AUTH="native", COURSE_INSTRUCTORS=teacher,
                           COURSE_EXCHANGE=str(base / "exchange"))
        browser = _Browser(url)
        status, page, _ = browser.open("login")
        assert status == 200 and "signup" in page, "the log-in page does not offer to sign up"
        for name in (teacher, learner):
            status, page, _ = browser.open("signup", {"username": name, "signup_password": password[name],
                                                      "signup_password_confirmation": password[name]})
            expected = "successful" if name == teacher else "sent to the admin"
            assert status == 200 and expected in page, re.sub(r"\s+", " ", page)[-1500:]

        # An instructor is approved already; a learner waits for an instructor.
        def log_in(secret: str):
            return call(f"{url}/hub/api/users/{teacher}/tokens", method="POST",
                        data={"auth": {"username": teacher, "password": secret}})

        assert log_in("wrong" + password[teacher])[0] == 403
        status, body = log_in(password[teacher])
        assert status == 201, body
        token = body["token"]
        status, page, _ = browser.open("login", {"username": learner, "password": password[learner]})
        assert status == 403 and "not been approved" in page, "a learner logged in before an instructor approved"
        instructor = _Browser(url)  # approval happens on a page: the instructor logs in with the form
        status, _, location = instructor.open("login", {"username": teacher, "password": password[teacher]})
        assert status == 302 and "login" not in location, "the instructor cannot log in with the form"
        status, page, _ = instructor.open("authorize")
        assert status == 200 and learner in page
        assert instructor.open(f"authorize/{learner}")[0] == 302
        status, _, location = browser.open("login", {"username": learner, "password": password[learner]})
        assert status == 302 and "login" not in location, "an approved learner cannot log in"
        status, user = call(f"{url}/hub/api/users/{learner}", token)
        assert status == 200 and not user["admin"]
        assert call(f"{url}/hub/api/users/{teacher}", token)[1]["admin"]
    except BaseException:
        print(log_tail(base))
        raise
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(base, ignore_errors=True)


BAD = [
    ({"COURSE_HUB_AUTH": "ldap"}, "COURSE_HUB_AUTH='ldap': expected 'native' or 'shared'"),
    ({"COURSE_HUB_AUTH": "shared", "COURSE_HUB_SHARED_PASSWORD": "x" * 12, "COURSE_HUB_IP": "0.0.0.0"},
     "a test mode: it listens on loopback only"),
    ({"COURSE_HUB_AUTH": "shared"}, "needs COURSE_HUB_SHARED_PASSWORD"),
    ({"COURSE_HUB_PORT": "80a"}, "COURSE_HUB_PORT='80a': expected a port number"),
]
LOAD = "import sys; from traitlets.config.loader import PyFileConfigLoader as L; L(sys.argv[1]).load_config()"


def _refused(cmd: list[str], tmp_path: Path, settings: dict) -> str:
    env = {"PATH": "/usr/bin:/bin", "COURSE_HUB_STATE": str(tmp_path / "state"),
           "COURSE_EXCHANGE": str(tmp_path / "exchange"), **settings}
    run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0, "the configuration accepted bad settings"
    assert "Traceback" not in run.stdout + run.stderr
    return run.stdout + run.stderr


@pytest.mark.parametrize("settings, message", BAD)
def test_bad_settings_get_a_clear_message(tmp_path, settings, message):
    pytest.importorskip("jupyterhub", reason="the [hub] extra is not installed: run `make install`")
    assert message in _refused([str(BIN / "python"), "-c", LOAD, str(CONFIG)], tmp_path, settings)


@pytest.mark.slow
def test_the_hub_stops_on_bad_settings_with_that_message(tmp_path):
    pytest.importorskip("jupyterhub", reason="the [hub] extra is not installed: run `make install`")
    settings, message = BAD[0]
    assert message in _refused([str(BIN / "jupyterhub"), "-f", str(CONFIG)], tmp_path, settings)


def test_the_kubernetes_values_describe_the_same_course():
    """values.yaml cannot be run here (no cluster); its Python must compile and its course,
    groups, role folders and exchange must be the ones the one-server hub uses."""
    yaml = pytest.importorskip("yaml")
    values = yaml.safe_load((HUB_DIR / "values.yaml").read_text())
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "course_auth.CourseNativeAuthenticator"
    assert (HUB_DIR / "course_auth.py").exists()
    assert set(config["JupyterHub"]["load_groups"]) == {f"formgrade-{COURSE}", f"nbgrader-{COURSE}"}
    assert set(config["JupyterHub"]["load_groups"][f"formgrade-{COURSE}"]["users"]) == set(
        config["Authenticator"]["admin_users"])
    roles = values["hub"]["extraConfig"]["course-roles"]
    compile(roles, "values.yaml: hub.extraConfig.course-roles", "exec")
    assert f'COURSE = "{COURSE}"' in roles
    folder = re.search(r'ROLES = "/opt/transformers-piece-by-piece/(.*)"', roles).group(1)
    assert all((REPO / folder / role / "labconfig" / "page_config.json").exists() for role in ("learner", "instructor"))
    mounts = {m["name"]: m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    assert values["singleuser"]["extraEnv"]["COURSE_EXCHANGE"] == mounts["exchange"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HUB_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_acl_gives_one_more_user_access_and_is_taken_back(tmp_path):
    acl = _load("posix_acl")
    page = tmp_path / "page.html"
    page.write_text("feedback")
    page.chmod(0o640)
    try:
        acl.grant(page, acl.READ, uid=54321)
    except acl.NoACLs:
        pytest.skip("this file system keeps no POSIX ACLs")
    entries = acl.read(page)
    assert (acl.USER, acl.READ, 54321) in entries
    assert (acl.MASK, acl.READ, acl.NO_ID) in entries  # the mask lets the named user read, no more
    assert page.stat().st_mode & 0o777 == 0o640
    acl.grant(page, acl.READ | acl.WRITE, gid=54322)
    assert page.stat().st_mode & 0o070 == 0o060, "the mask shows in the group bits"
    acl.revoke(page, uid=54321)
    acl.revoke(page, gid=54322)
    assert acl.read(page) == [(acl.USER_OBJ, 6, acl.NO_ID), (acl.GROUP_OBJ, 4, acl.NO_ID), (acl.OTHER, 0, acl.NO_ID)]
    assert page.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("course, message", [
    (False, "is not a course folder: it has no nbgrader_config.py"),
    (True, "no feedback pages in"),
])
def test_release_feedback_says_what_is_missing(tmp_path, course, message):
    if course:
        shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    run = subprocess.run([str(BIN / "python"), str(HUB_DIR / "release_feedback.py"), "attention",
                          "--course-root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr
