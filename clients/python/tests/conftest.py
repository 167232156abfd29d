"""Fixtures: a capturing HTTP server standing in for the exporter, and torch either faked
at the module boundary (a module injected into sys.modules) or real when CUDA is there."""

import json
import os
import socket
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


class Capture:
    """What the fake exporter received; `status` and `delay` shape its answers."""

    def __init__(self):
        self.pushes = []
        self.headers = []
        self.status = 202
        self.delay = 0.0
        self.lock = threading.Lock()

    def bodies(self):
        with self.lock:
            return list(self.pushes)

    def wait_for(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.bodies():
                if pred(p):
                    return p
            time.sleep(0.02)
        raise AssertionError("no push matched within %.1fs; got %r" % (timeout, self.bodies()[-3:]))


@pytest.fixture
def exporter():
    cap = Capture()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(n)
            if cap.delay:
                time.sleep(cap.delay)
            with cap.lock:
                cap.headers.append(dict(self.headers))
                if cap.status == 202:
                    cap.pushes.append(json.loads(raw))
            body = json.dumps({"status": "accepted"} if cap.status == 202 else {"error": "/devices/0/reserved_bytes: must be >= 0"}).encode()
            self.send_response(cap.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    cap.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield cap
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- torch at the module boundary -------------------------------------------------

GIB = 1024**3


class FakeEvent:
    """A CUDA event whose completion and timing the test controls."""

    clock = [0.0]

    def __init__(self, enable_timing=False):
        self.t = None
        self.done = True

    def record(self, stream=None):
        self.t = FakeEvent.clock[0]

    def query(self):
        return self.done

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0


class FakeProps:
    def __init__(self, uuid):
        self.uuid = uuid


class FakeCuda(types.ModuleType):
    """torch.cuda as the reporter uses it, with allocator state the test sets."""

    def __init__(self):
        super().__init__("torch.cuda")
        self.initialized = True
        self.stats = {
            0: {"reserved_bytes.all.current": 8 * GIB, "reserved_bytes.all.peak": 8 * GIB, "allocated_bytes.all.current": 6 * GIB,
                "inactive_split_bytes.all.current": 256 * 1024**2, "num_alloc_retries": 2, "num_ooms": 1},
            1: {"reserved_bytes.all.current": 0, "reserved_bytes.all.peak": 0, "allocated_bytes.all.current": 0,
                "inactive_split_bytes.all.current": 0, "num_alloc_retries": 0, "num_ooms": 0},
            2: {"reserved_bytes.all.current": 4 * GIB, "reserved_bytes.all.peak": 5 * GIB, "allocated_bytes.all.current": GIB,
                "inactive_split_bytes.all.current": 0, "num_alloc_retries": 0, "num_ooms": 0},
        }
        self.snapshot = [
            {"device": 0, "total_size": 4 * GIB, "blocks": [{"size": GIB, "state": "active_allocated"}, {"size": 3 * GIB // 4, "state": "inactive"}]},
            {"device": 0, "total_size": 4 * GIB, "blocks": [{"size": 512 * 1024**2, "state": "inactive"}]},
            {"device": 2, "total_size": 4 * GIB, "blocks": [{"size": GIB, "state": "active_allocated"}, {"size": 3 * GIB, "state": "inactive"}]},
        ]
        self.calls = {"memory_stats": 0, "memory_snapshot": 0, "get_device_properties": 0}
        self.Event = FakeEvent

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def device_count(self):
        return len(self.stats)

    def memory_stats(self, device=None):
        self.calls["memory_stats"] += 1
        if not self.initialized:
            return {}
        return dict(self.stats[device])

    def memory_snapshot(self):
        self.calls["memory_snapshot"] += 1
        return self.snapshot

    def get_device_properties(self, i):
        self.calls["get_device_properties"] += 1
        return FakeProps("6f5b0e8d-1c2a-4e3b-9a7c-0000000000%02d" % i)


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    torch.cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def real_torch_or_skip():
    try:
        import torch  # noqa: F401
    except Exception as e:
        pytest.skip("real torch not installed (%s): the fake-torch variant covers this test" % e.__class__.__name__)
    if not torch.cuda.is_available():
        pytest.skip("torch is installed but no CUDA device is visible")
    return torch


@pytest.fixture(params=["fake", "real"])
def torch_backend(request, monkeypatch):
    """The same test against fake torch and, on a CUDA machine, against real torch."""
    if request.param == "fake":
        torch = types.ModuleType("torch")
        torch.cuda = FakeCuda()
        monkeypatch.setitem(sys.modules, "torch", torch)
        return torch
    torch = real_torch_or_skip()
    # Make this process use device 0 so the allocator has something to report.
    keep = [torch.empty(64 * 1024**2, dtype=torch.uint8, device="cuda:0") for _ in range(3)]
    del keep[1]
    request.node._keep = keep
    torch.cuda.synchronize()
    return torch
