"""Shared fixtures: every device present, tiny seeds, the gpu marker, and the built book."""
from __future__ import annotations

import os

import pytest
import torch

from course_lib.device import available_devices
from tests.grading_batch import grading_batch  # noqa: F401 - the one `course grade` batch the grading tests share

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Two xdist workers share two cores: one thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

DEVICES = available_devices()


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Parametrises a test over cpu and, where present, cuda and mps."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def built_book():
    """The book, built once per test run into book/_build, the folder `make book` uses: pages
    execute through jupyter-cache (see course_lib.book_build), so a warm cache runs none.
    Returns the HTML folder; results tests read what the executed pages glued with
    ``course_lib.book_build.page_values``."""
    from filelock import FileLock

    from course_lib.book_build import BOOK, build

    (BOOK / "_build").mkdir(exist_ok=True)
    with FileLock(str(BOOK / "_build" / ".build.lock")):  # never two builds of one folder at once
        build(quiet=True)
    return BOOK / "_build" / "html"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Every test that needs the executed book runs on one xdist worker, first: the build is
    # the longest single task, and the other worker runs everything else meanwhile. The group
    # must be a module mark: xdist reads it before this hook could add it.
    for item in items:
        if "built_book" in getattr(item, "fixturenames", ()) and not any(
                mark.args[:1] == ("book",) for mark in item.iter_markers("xdist_group")):
            raise pytest.UsageError(f"{item.nodeid} uses the built book: its module needs "
                                    'pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]')
    items.sort(key=lambda item: "built_book" not in getattr(item, "fixturenames", ()))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def tolerance(dtype: torch.dtype) -> dict:
    """atol/rtol that fit the precision of ``dtype``."""
    return {
        torch.float64: dict(atol=1e-10, rtol=1e-8),
        torch.float32: dict(atol=1e-5, rtol=1e-4),
        torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
        torch.float16: dict(atol=2e-3, rtol=2e-3),
    }[dtype]
