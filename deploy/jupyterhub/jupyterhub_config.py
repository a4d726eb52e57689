"""JupyterHub for one class on one server (the Littlest JupyterHub shape).

Run as root from the course's virtual environment:

    .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

Each person is a system user, and their JupyterLab runs as that user (LocalProcessSpawner).
Instructors get every nbgrader tool; learners only fetch, validate, submit and read feedback
(the role folders in ``roles/``). Assignments and submissions go through nbgrader's exchange,
a shared folder whose file permissions keep learners apart. Everything a class changes is an
environment variable (see README.md beside this file):

    COURSE_INSTRUCTORS      comma-separated user names of the instructors (hub admins)
    COURSE_EXCHANGE         nbgrader's exchange (default /srv/nbgrader/exchange)
    COURSE_HUB_STATE        the hub's database, cookie secret and proxy pid (default /srv/jupyterhub)
    COURSE_HUB_IP / _PORT   where the hub listens (default 127.0.0.1:8000: put TLS in front)
    COURSE_HUB_API_PORT, COURSE_HUB_PROXY_API_PORT   internal ports (default 8081, 8001)
    COURSE_HUB_AUTH         "native" (sign-up, approved by an instructor) or "shared": a test
                            mode, on loopback only, with COURSE_HUB_SHARED_PASSWORD for
                            learners and COURSE_HUB_ADMIN_PASSWORD (32+ characters) for instructors
    COURSE_HUB_CREATE_USERS "1" (default) creates a missing system user at its first start
"""
import ipaddress
import os
import pwd
import subprocess
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent  # the hub and every user's server run from the course's .venv
COURSE_ID = "transformers-piece-by-piece"  # as in the repository's nbgrader_config.py
# nbgrader's own names for a course's groups (its JupyterHubAuthPlugin reads the same ones)
INSTRUCTOR_GROUP = f"formgrade-{COURSE_ID}"
LEARNER_GROUP = f"nbgrader-{COURSE_ID}"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _port(name: str, default: int) -> int:
    text = _env(name, str(default))
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SystemExit(f"{name}={text!r}: expected a port number between 1 and 65535")
    return int(text)


EXCHANGE = Path(_env("COURSE_EXCHANGE", "/srv/nbgrader/exchange"))
STATE = Path(_env("COURSE_HUB_STATE", "/srv/jupyterhub"))
IP = _env("COURSE_HUB_IP", "127.0.0.1")
INSTRUCTORS = sorted({n.strip() for n in _env("COURSE_INSTRUCTORS", "instructor").split(",") if n.strip()})
AUTH = _env("COURSE_HUB_AUTH", "native")
IS_ROOT = os.geteuid() == 0

# --- where it listens, and its state --------------------------------------------------------
STATE.mkdir(parents=True, exist_ok=True)
os.chmod(STATE, 0o700)  # the database holds password hashes and tokens
c.JupyterHub.bind_url = f"http://{IP}:{_port('COURSE_HUB_PORT', 8000)}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_port('COURSE_HUB_API_PORT', 8081)}"
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server

# configurable-http-proxy from npm, installed by `make install` into .venv/node
proxy = VENV_BIN.parent / "node" / "bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [str(proxy) if proxy.exists() else "configurable-http-proxy"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_port('COURSE_HUB_PROXY_API_PORT', 8001)}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# --- who may log in --------------------------------------------------------------------------
c.Authenticator.admin_users = set(INSTRUCTORS)
if AUTH == "native":
    import nativeauthenticator

    sys.path.insert(0, str(HERE))
    from course_auth import CourseNativeAuthenticator  # NativeAuthenticator, fixed for JupyterHub 6

    c.JupyterHub.authenticator_class = CourseNativeAuthenticator
    c.JupyterHub.template_paths = [str(Path(nativeauthenticator.__file__).parent / "templates")]
    c.CourseNativeAuthenticator.open_signup = False  # an instructor approves each sign-up at /hub/authorize
    c.CourseNativeAuthenticator.minimum_password_length = 10
    c.CourseNativeAuthenticator.check_common_password = True
    c.CourseNativeAuthenticator.allowed_failed_logins = 5
    c.Authenticator.allow_all = True  # approval by an instructor is the gate
elif AUTH == "shared":
    if not ipaddress.ip_address(IP).is_loopback:
        raise SystemExit(f"COURSE_HUB_AUTH=shared is a test mode: it listens on loopback only, not {IP}")
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = _env("COURSE_HUB_SHARED_PASSWORD", "")
    c.SharedPasswordAuthenticator.admin_password = _env("COURSE_HUB_ADMIN_PASSWORD", "")
    if not c.SharedPasswordAuthenticator.user_password:
        raise SystemExit("COURSE_HUB_AUTH=shared needs COURSE_HUB_SHARED_PASSWORD")
    c.Authenticator.allow_all = False
    c.Authenticator.allow_existing_users = True  # users an instructor adds through the admin page or API
else:
    raise SystemExit(f"COURSE_HUB_AUTH={AUTH!r}: expected 'native' or 'shared'")

c.JupyterHub.load_groups = {INSTRUCTOR_GROUP: {"users": INSTRUCTORS}, LEARNER_GROUP: {"users": []}}


# --- the shared exchange ---------------------------------------------------------------------
def prepare_exchange() -> None:
    """The exchange root, writable by all like nbgrader wants, and the course's folder in it
    owned by the first instructor, so that no learner can create it first and own it."""
    EXCHANGE.mkdir(parents=True, exist_ok=True)
    os.chmod(EXCHANGE, 0o1777)  # sticky: nobody removes another's folder
    course = EXCHANGE / COURSE_ID
    owners = [pwd.getpwnam(n) for n in INSTRUCTORS if _has_system_user(n)]
    if not course.exists() and owners:
        course.mkdir(mode=0o755)
        os.chown(course, owners[0].pw_uid, owners[0].pw_gid)


def _has_system_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_system_user(name: str) -> None:
    """A learner approved on the hub gets a system account at the first start of their server,
    with a private home (their work and nbgrader's submission secrets live there)."""
    if _has_system_user(name):
        return
    if not IS_ROOT or _env("COURSE_HUB_CREATE_USERS", "1") != "1":
        raise RuntimeError(f"there is no system user {name!r}: create it with `useradd --create-home {name}`")
    made = subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], capture_output=True, text=True)
    if made.returncode:
        raise RuntimeError(f"could not make a system user {name!r}: {made.stderr.strip()}")
    os.chmod(pwd.getpwnam(name).pw_dir, 0o700)


def closed_folder(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot pass (no o+x, no ACL)."""
    for folder in reversed(Path(os.path.realpath(path)).parents):
        if not os.stat(folder).st_mode & 0o001 and "system.posix_acl_access" not in os.listxattr(folder):
            return folder
    return None


if IS_ROOT:
    prepare_exchange()
    for needed in (sys.executable, VENV_BIN):  # a Python under /root (pyenv's default) is out of reach
        if closed_folder(Path(needed)):
            print(f"WARNING: users cannot reach {os.path.realpath(needed)}: {closed_folder(Path(needed))} "
                  "is closed to them, so their servers will not start. Build .venv from a Python that "
                  "every user can run (e.g. Debian's python3).", file=sys.stderr)


# --- each user's JupyterLab ------------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
    "COURSE_EXCHANGE": str(EXCHANGE),
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


def role_of(user) -> str:
    """An instructor is in the course's formgrade group (instructors can add others there)."""
    return "instructor" if user.name in INSTRUCTORS or any(
        g.name == INSTRUCTOR_GROUP for g in user.groups) else "learner"


def pre_spawn(spawner) -> None:
    user = spawner.user
    ensure_system_user(user.name)
    role = role_of(user)
    if role == "learner" and not any(g.name == LEARNER_GROUP for g in user.groups):
        from jupyterhub import orm

        group = orm.Group.find(user.db, LEARNER_GROUP)
        if group is not None:  # keeps the hub's group list the class list
            user.orm_user.groups.append(group)
            user.db.commit()
    # The role's folder comes first on Jupyter's config path: it switches nbgrader's lab and
    # server extensions off or on, and sets the exchange. A user's own ~/.jupyter still
    # counts after it; the exchange's permissions, not the menus, keep learners apart.
    spawner.environment = dict(spawner.environment, COURSE_ROLE=role,
                               JUPYTER_CONFIG_PATH=str(HERE / "roles" / role))


c.Spawner.pre_spawn_hook = pre_spawn
