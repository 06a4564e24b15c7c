"""Stand-in for ``pycuda.driver``: per-thread context stacks, pinned/device buffers in host memory, and a record of
every call, checked at exit as pycuda checks it (a context left pushed aborts the process)."""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading

import numpy as np

LOG = {"push": 0, "pop": 0, "alloc": 0, "free": 0, "pinned": 0, "detach": 0, "retain": 0, "threads": set()}
MEMORY: dict[int, np.ndarray] = {}
_state = threading.local()
_next = [4096]


class Error(Exception):
    pass


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def _require_context() -> None:
    if not _stack():
        raise Error("cuMemAlloc failed: invalid device context (no currently active context)")


def init() -> None:
    pass


class Context:
    def __init__(self) -> None:
        self.detached = False

    def push(self) -> None:
        if self.detached:
            raise Error("cuCtxPushCurrent failed: context is destroyed")
        _stack().append(self)
        LOG["push"] += 1
        LOG["threads"].add(threading.get_ident())

    @staticmethod
    def pop() -> None:
        if not _stack():
            raise Error("cuCtxPopCurrent failed: context stack is empty")
        _stack().pop()
        LOG["pop"] += 1

    def detach(self) -> None:
        if any(self is c for c in _stack()):
            raise Error("detaching a context that is current")
        self.detached = True
        LOG["detach"] += 1


class Device:
    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def compute_capability(self) -> tuple[int, int]:
        return 8, 7

    def name(self) -> str:
        return "Fake Orin"

    def retain_primary_context(self) -> Context:
        LOG["retain"] += 1
        return Context()


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        _require_context()
        self.address = _next[0]
        _next[0] += nbytes + 4096
        MEMORY[self.address] = np.zeros(nbytes, np.uint8)
        LOG["alloc"] += 1

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        _require_context()
        MEMORY.pop(self.address)
        LOG["free"] += 1


def mem_alloc(nbytes: int) -> DeviceAllocation:
    return DeviceAllocation(nbytes)


def pagelocked_empty(shape, dtype) -> np.ndarray:
    _require_context()
    LOG["pinned"] += 1
    return np.empty(shape, dtype)


class Stream:
    def __init__(self) -> None:
        _require_context()
        self.handle = 7

    def synchronize(self) -> None:
        _require_context()


def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Stream) -> None:
    _require_context()
    raw = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
    MEMORY[int(dest)][: raw.size] = raw


def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Stream) -> None:
    _require_context()
    flat = dest.reshape(-1).view(np.uint8)
    flat[:] = MEMORY[int(src)][: flat.size]


def _report() -> None:
    """At exit, after memgaze's finalizers: what pycuda would complain about, as JSON on stderr's last line."""
    leftover = len(_stack())
    summary = {k: (len(v) if isinstance(v, set) else v) for k, v in LOG.items()}
    summary.update(leftover_pushed=leftover, leaked_buffers=len(MEMORY))
    sys.stderr.write("FAKE-PYCUDA " + json.dumps(summary) + "\n")
    if leftover:
        sys.stderr.write("PyCUDA ERROR: The context stack was not empty upon module cleanup.\n")
        sys.stderr.flush()
        os._exit(134)  # pycuda aborts (SIGABRT)


atexit.register(_report)
