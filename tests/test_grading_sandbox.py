"""The operating-system layer of the grading sandbox, tested directly.

A helper process does what a grading worker does (enters a network namespace, writes the
kernelspec) and starts one sandboxed kernel in a submission directory inside a protected
course root. The probe uses ctypes, which the in-kernel audit hook does not see, so what
it finds is what the mount namespace, the user switch and the limits allow.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from course_lib.grading.kernel import RESERVE_ENV
from course_lib.grading.sandbox import can_isolate

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not can_isolate(), reason="namespaces need root on Linux")]

PROBE = r'''
import ctypes, json, os, resource, socket
libc = ctypes.CDLL(None, use_errno=True)
def can_open(path, flags=0):
    fd = libc.open(path.encode(), flags, 0o644)
    return fd >= 0
report = {
    "uid": os.getuid(),
    "secret": can_open(SECRET),
    "gradebook": can_open(GRADEBOOK),
    "write_outside": can_open(OUTSIDE, os.O_WRONLY | os.O_CREAT),
    "write_here": can_open("mine.txt", os.O_WRONLY | os.O_CREAT),
    "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
    "vm_kb": int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]),
    "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
}
try:
    socket.create_connection(("10.255.255.1", 80), timeout=2)
    report["network"] = "connected"
except PermissionError:
    report["network"] = "refused by the audit hook"
report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
try:
    open(SECRET).read()
    report["audit"] = "read"
except PermissionError:
    report["audit"] = "blocked"
print("REPORT" + json.dumps(report))
'''

DRIVER = r'''
import json, os, sys
from pathlib import Path
from jupyter_client.manager import KernelManager
from course_lib.grading.sandbox import SandboxConfig, isolate_network, write_kernelspec
root, work = Path(sys.argv[1]), Path(sys.argv[2])
isolate_network()
config = SandboxConfig(cpu_seconds=120, protected=[str(root), str(work)])
config.save(work / "sandbox.json")
write_kernelspec(work / "jupyter" / "kernels", work / "sandbox.json")
os.environ["JUPYTER_PATH"] = str(work / "jupyter")
os.environ["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")
cwd = work / "sub" / "autograded" / "student" / "attention"
cwd.mkdir(parents=True)
km = KernelManager(kernel_name="course-sandbox")
km.start_kernel(cwd=str(cwd))
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)
out = []
def keep(msg):
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
kc.execute_interactive(sys.stdin.read(), output_hook=keep, timeout=120)
km.shutdown_kernel(now=True)
print("".join(out))
'''


def test_kernel_sees_nothing_it_should_not(tmp_path):
    root, work = tmp_path / "course", tmp_path / "work"
    (root / "solutions").mkdir(parents=True)
    work.mkdir()
    secret = root / "solutions" / "secret.ipynb"
    secret.write_text("hidden tests")
    (root / "gradebook.db").write_text("grades")
    code = textwrap.dedent(f"SECRET = {str(secret)!r}\nGRADEBOOK = {str(root / 'gradebook.db')!r}\n"
                           f"OUTSIDE = {str(root / 'pwned.txt')!r}\n") + PROBE
    # The kernel starts the way the CUDA build of torch does, with 64 GB of address space mapped.
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1", **{RESERVE_ENV: str(64 << 30)})
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(root), str(work)], input=code, text=True,
                          capture_output=True, timeout=300, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("REPORT")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(line[len("REPORT"):])
    assert report["uid"] == 65534
    assert not report["secret"] and not report["gradebook"], "the mount namespace must hide the course root"
    assert not report["write_outside"] and not (root / "pwned.txt").exists()
    assert report["write_here"]
    # memory is limited by the grader on resident memory (memory.py), never on address space
    assert report["address_space"] == resource.RLIM_INFINITY and report["vm_kb"] >= 64 << 20
    assert report["cpu"] == 120
    assert report["interfaces"] == ["lo"], "only loopback in the kernel's network namespace"
    assert report["network"] == "refused by the audit hook"
    assert report["audit"] == "blocked"
