"""Run-time checks that a learner's function does not call a forbidden shortcut.

Two mechanisms, so that an alias (``from torch.nn.functional import
scaled_dot_product_attention as f``) does not slip through:

* a ``TorchFunctionMode`` sees every call to a torch function, however it was named;
* a profile hook sees every call into a Python function, matched by its code object.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode


class ForbiddenCallError(AssertionError):
    """Raised when checked code calls a function it was told not to use."""


def _describe(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))


class _TorchGuard(TorchFunctionMode):
    def __init__(self, forbidden: dict, message: str):
        super().__init__()
        self.forbidden = forbidden
        self.message = message

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = self.forbidden.get(func)
        if name is not None:
            raise ForbiddenCallError(self.message.format(name=name))
        return func(*args, **(kwargs or {}))


@contextmanager
def forbid_calls(*functions, message: str = "calling {name} is not allowed in this exercise"):
    """Raise :class:`ForbiddenCallError` if any of ``functions`` is called inside the block.

    ``functions`` may be torch functions (``torch.softmax``, ``F.scaled_dot_product_attention``),
    tensor methods (``torch.Tensor.softmax``) or plain Python functions.
    """
    torch_funcs = {}
    codes = {}
    for fn in functions:
        code = getattr(fn, "__code__", None)
        if code is not None:
            codes[code] = _describe(fn)
        else:
            torch_funcs[fn] = _describe(fn)

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            raise ForbiddenCallError(message.format(name=codes[frame.f_code]))

    old_profile = sys.getprofile()
    sys.setprofile(profiler if codes else old_profile)
    try:
        with _TorchGuard(torch_funcs, message):
            yield
            # Code that removes the profiler could call a forbidden function unseen.
            if codes and sys.getprofile() is not profiler:
                raise ForbiddenCallError("the checked code switched off the call checks (sys.setprofile)")
    finally:
        sys.setprofile(old_profile)
