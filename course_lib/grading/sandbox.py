"""Operating-system isolation for grading kernels.

``python -I .../course_lib/grading/sandbox.py --config FILE -f CONNECTION ...`` is the ``argv`` of
the kernelspec that grading uses (see :func:`write_kernelspec`). Started by nbgrader (as
the instructor) in the submission's directory, it:

1. reads the connection file and the config while it still can;
2. when it runs as root on Linux, enters a private mount namespace and, for each protected
   tree (the course root, the grading work directory, the submissions, ``/tmp``...), mounts
   an empty tmpfs over it and binds back, read-only, only what the kernel needs: the Python
   installation and ``course_lib``. Even ``..`` from the working directory then leads only
   into empty directories;
3. replaces the working directory (which holds the notebook under grading, hidden tests
   included) with a fresh, size-limited tmpfs holding copies of the assignment's data files:
   what the kernel writes is capped and discarded;
4. sets resource limits (CPU seconds, file size, processes, core dumps), drops to an
   unprivileged user, asks to be killed if its parent dies and adopts its orphaned
   descendants (so that the memory limit still sees them);
5. execs ``course_lib.grading.kernel`` with a clean environment and stdio on /dev/null,
   so that nothing it prints can reach the grader's own streams.

The network is cut one level up: each grading worker enters a new network namespace that
has only a loopback interface (:func:`isolate_network`); the kernel inherits it. Memory is
limited one level up too (``memory.py``), by resident memory: no address-space limit here,
since the CUDA build of torch maps tens of GB of address space at start-up.

Without root, the mount and user parts of steps 2-4 are skipped, limits still apply, and the
in-kernel audit hook is the remaining barrier; :func:`isolation_level` says which applies.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import functools
import json
import os
import resource
import socket
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
KERNEL_NAME = "course-sandbox"
RESERVE_ENV = "COURSE_SANDBOX_TEST_RESERVE_BYTES"  # the same as kernel.RESERVE_ENV (not imported: see below)
# The launcher runs as a plain script (``python -I sandbox.py``): importing the course_lib
# package would load torch a second time for every kernel start.
LIBRARY = str(Path(__file__).resolve().parents[1])


@dataclass
class SandboxConfig:
    cpu_seconds: int = 600
    file_bytes: int = 64 << 20
    workdir_bytes: int = 256 << 20  # the kernel's working directory is a tmpfs of this size
    max_processes: int = 256
    protected: list[str] = field(default_factory=list)  # trees to hide from the kernel
    uid: int = 65534  # nobody
    gid: int = 65534
    log_file: str | None = None  # kernel stdio goes here instead of /dev/null (debugging)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@functools.lru_cache(maxsize=1)
def can_isolate() -> bool:
    """Can this machine give a kernel its own mount and network namespaces? (Tried in a child.)"""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    probe = "import ctypes, ctypes.util, sys; sys.exit(ctypes.CDLL(ctypes.util.find_library('c')).unshare(%d))"
    result = subprocess.run([sys.executable, "-I", "-c", probe % (CLONE_NEWNS | CLONE_NEWNET)], capture_output=True)
    return result.returncode == 0


def isolation_level() -> str:
    return ("namespaces (mount, network), unprivileged user, rlimits, audit hook" if can_isolate()
            else "rlimits and audit hook only (not root: no namespaces, no user switch)")


def isolate_network() -> bool:
    """Move this process into a new network namespace with only loopback up."""
    if not can_isolate():
        return False
    _check(_libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, 0x8913, request)[:18])[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP
    return True


def write_kernelspec(kernels_dir: Path, config_path: Path) -> Path:
    """Write the ``course-sandbox`` kernelspec; put ``kernels_dir``'s parent on JUPYTER_PATH."""
    spec_dir = Path(kernels_dir) / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-I", str(Path(__file__).resolve()), "--config", str(config_path),
                 "-f", "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def _outermost(paths: list[str]) -> list[str]:
    paths = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    return [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _hide_tree(libc, top: str, keep_ro: list[str], fresh: list[str], writable_top: bool) -> None:
    """Mount an empty tmpfs over ``top``, bind back ``keep_ro`` read-only, make ``fresh`` paths exist."""
    kept = [p for p in keep_ro if _under(p, top) and p != top]
    fds = [(os.open(p, os.O_PATH), p) for p in kept]
    mode = "1777" if writable_top else "0755"
    _check(libc.mount(b"tmpfs", top.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=256m".encode()),
           f"mount tmpfs on {top}")
    for fd, path in fds:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).touch()
        _check(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
        _check(libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None),
               f"read-only {path}")
        os.close(fd)
    for path in fresh:
        if _under(path, top) and path != top:
            os.makedirs(path, exist_ok=True)


def _enter_private_view(config: SandboxConfig, cwd: str) -> None:
    """Hide the protected trees; give the kernel a fresh, size-limited working directory.

    The real working directory holds the notebook under grading, hidden tests included, and
    is on disk: the kernel gets an empty tmpfs at the same path instead, with copies of the
    assignment's data files, so what it writes is capped and thrown away afterwards.
    """
    data = {}
    for entry in os.scandir(cwd):
        if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".ipynb"):
            data[entry.name] = Path(entry.path).read_bytes()[: config.file_bytes]
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    # The interpreter may live in a private home (pyenv under /root): hide the home, bind it back.
    keep_ro = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, LIBRARY)]
    scratch = ["/tmp", "/var/tmp", "/dev/shm"]
    for top in _outermost(config.protected + scratch + [os.path.expanduser("~")]):
        _hide_tree(libc, top, keep_ro, [cwd], writable_top=top in scratch)
    os.makedirs(cwd, exist_ok=True)
    options = f"mode=0700,uid={config.uid},gid={config.gid},size={config.workdir_bytes}"
    _check(libc.mount(b"tmpfs", cwd.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()), "mount workdir")
    os.chdir(cwd)
    for name, content in data.items():
        Path(name).write_bytes(content)
        os.chown(name, config.uid, config.gid)


def _set_limits(config: SandboxConfig, own_user: bool) -> None:
    limits = {
        resource.RLIMIT_CPU: config.cpu_seconds,
        resource.RLIMIT_FSIZE: config.file_bytes,
        resource.RLIMIT_CORE: 0,
    }
    if own_user:  # the process count is per user: only meaningful for the sandbox's own user
        limits[resource.RLIMIT_NPROC] = config.max_processes
    for which, value in limits.items():
        hard = value + 5 if which == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL after 5 s
        resource.setrlimit(which, (value, hard))


def _clean_env(home: str) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
           "IPYTHONDIR": f"{home}/.ipython", "MPLCONFIGDIR": f"{home}/.mpl", "XDG_CACHE_HOME": f"{home}/.cache",
           "JUPYTER_RUNTIME_DIR": f"{home}/.runtime", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    return env


def launch(config: SandboxConfig, connection_file: str, extra: list[str]) -> None:
    os.umask(0o022)  # the grader runs with 077; the skeleton directories must be traversable
    cwd = os.path.realpath(os.getcwd())
    connection = Path(connection_file).read_text()
    sink = os.open(config.log_file or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    isolated = sys.platform.startswith("linux") and os.geteuid() == 0  # falls back below if refused
    for entry in os.listdir(cwd):  # the notebook under grading holds the hidden tests
        if entry.endswith(".ipynb"):
            os.chmod(os.path.join(cwd, entry), 0o600)
    if isolated:
        try:
            _enter_private_view(config, cwd)
        except OSError as err:  # e.g. root in a container without CAP_SYS_ADMIN
            os.write(sink, f"sandbox: no private view, running unisolated ({err})\n".encode())
            isolated = False
    home = "/tmp/home" if isolated else os.path.join(cwd, ".home")
    os.makedirs(home, exist_ok=True)
    kernel_conn = os.path.join(home, "kernel.json")
    Path(kernel_conn).write_text(connection)
    os.chmod(kernel_conn, 0o600)
    audit = {"protected": config.protected, "allowed": [os.path.realpath(sys.prefix), LIBRARY, cwd],
             "writable": [cwd, "/tmp", "/var/tmp", "/dev/shm", "/dev/null"]}
    env = _clean_env(home)
    env["COURSE_SANDBOX_AUDIT"] = json.dumps(audit)
    if os.environ.get(RESERVE_ENV):  # tests only, see kernel.RESERVE_ENV
        env[RESERVE_ENV] = os.environ[RESERVE_ENV]
    _set_limits(config, own_user=isolated)
    parent = os.getppid()
    if isolated:
        for path in (home, kernel_conn):
            os.chown(path, config.uid, config.gid)
        os.setgroups([])
        os.setgid(config.gid)
        os.setuid(config.uid)
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_PDEATHSIG, 9)  # after setuid, which clears it
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1)  # kept across exec: a double fork stays in the tree
        if os.getppid() != parent:
            os._exit(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd in (1, 2):
        os.dup2(sink, fd)
    # -I: a file the learner left in the working directory (a "torch.py") is not imported at start-up.
    os.execve(sys.executable, [sys.executable, "-I", "-m", "course_lib.grading.kernel", "-f", kernel_conn, *extra], env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="start a sandboxed grading kernel")
    parser.add_argument("--config", required=True)
    parser.add_argument("-f", dest="connection_file", required=True)
    args, extra = parser.parse_known_args(argv)
    raw = json.loads(Path(args.config).read_text())
    launch(SandboxConfig(**raw), args.connection_file, extra)


if __name__ == "__main__":
    main()
