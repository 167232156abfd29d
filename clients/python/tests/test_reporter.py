import logging
import socket
import sys
import threading
import time

import pytest

import ds_reporter
from ds_reporter import _torch


def start(url, **kw):
    kw.setdefault("interval", 0.05)
    kw.setdefault("job", "train")
    kw.setdefault("rank", 3)
    return ds_reporter.start(url=url, **kw)


def test_without_torch_reports_training_and_collectives(exporter, no_torch):
    r = start(exporter.url)
    r.step(samples=32)
    r.step(samples=32, steps=2)
    r.record_collective("all_reduce", 0.004, nbytes=1 << 20)
    r.record_collective("all_reduce", 0.006, nbytes=1 << 20)
    with r.timed_collective("broadcast"):
        time.sleep(0.02)
    r.stop()
    assert "torch" not in sys.modules, "the reporter must not import torch"
    pushes = exporter.bodies()
    assert pushes, "nothing pushed"
    last = pushes[-1]
    assert last["version"] == 1
    assert last["reporter"]["job"] == "train" and last["reporter"]["rank"] == 3
    assert {k: last["training"][k] for k in ("samples", "steps")} == {"samples": 64, "steps": 3}
    # The second call's two steps share the (tiny) time since the first.
    durations = [d for p in pushes for d in p.get("training", {}).get("step_durations_seconds", [])]
    assert len(durations) == 2 and durations[0] == durations[1] > 0, durations
    assert "devices" not in last
    colls = {c["op"]: c for p in pushes for c in p.get("collectives", [])}
    assert sorted(x for p in pushes for c in p.get("collectives", []) if c["op"] == "all_reduce" for x in c["durations_seconds"]) == [0.004, 0.006]
    assert sum(c.get("bytes", 0) for p in pushes for c in p.get("collectives", []) if c["op"] == "all_reduce") == 2 << 20
    b = [x for p in pushes for c in p.get("collectives", []) if c["op"] == "broadcast" for x in c["durations_seconds"]]
    assert len(b) == 1 and 0.015 <= b[0] < 5, b
    assert colls
    ts = [p["timestamp"] for p in pushes]
    assert ts == sorted(ts) and abs(ts[-1] - time.time()) < 30


def test_devices_from_allocator_stats(exporter, torch_backend):
    torch = torch_backend
    r = start(exporter.url, snapshot_interval=0.2)
    try:
        p = exporter.wait_for(lambda p: p.get("devices") and all("largest_free_block_bytes" in d for d in p["devices"]))
    finally:
        r.stop()
    by_index = {d["index"]: d for d in p["devices"]}
    assert 0 in by_index
    for i, d in by_index.items():
        s = torch.cuda.memory_stats(i)
        assert d["reserved_bytes"] == s["reserved_bytes.all.current"]
        assert d["allocated_bytes"] == s["allocated_bytes.all.current"]
        assert d["inactive_split_bytes"] == s["inactive_split_bytes.all.current"]
        assert d["num_alloc_retries"] == s["num_alloc_retries"]
        assert d["num_ooms"] == s["num_ooms"]
        assert d["uuid"].startswith("GPU-") or d["uuid"] == "" or d["uuid"].startswith("MIG-")
        free = max([b["size"] for seg in torch.cuda.memory_snapshot() if seg["device"] == i for b in seg["blocks"] if b["state"] == "inactive"] or [0])
        assert d["largest_free_block_bytes"] == free
    for i in range(torch.cuda.device_count()):
        if torch.cuda.memory_stats(i).get("reserved_bytes.all.peak", 0) == 0:
            assert i not in by_index, "a device the process never used is not reported"


def test_fake_values_and_uuid_spelling(exporter, fake_torch):
    r = start(exporter.url, snapshot_interval=0.2)
    p = exporter.wait_for(lambda p: p.get("devices") and "largest_free_block_bytes" in p["devices"][0])
    r.stop()
    d0, d2 = p["devices"]
    assert [d0["index"], d2["index"]] == [0, 2]
    assert d0["uuid"] == "GPU-6f5b0e8d-1c2a-4e3b-9a7c-000000000000"
    assert d0["reserved_bytes"] == 8 << 30 and d0["allocated_bytes"] == 6 << 30
    assert d0["largest_free_block_bytes"] == 3 * (1 << 30) // 4
    assert d2["largest_free_block_bytes"] == 3 << 30
    # UUIDs are asked once per device, not on every sample.
    assert fake_torch.cuda.calls["get_device_properties"] == 2


def test_snapshot_runs_at_the_lower_rate(exporter, fake_torch):
    r = start(exporter.url, interval=0.02, snapshot_interval=60)
    exporter.wait_for(lambda p: True)
    time.sleep(0.3)
    r.stop()
    assert fake_torch.cuda.calls["memory_stats"] >= 2 * 5
    assert fake_torch.cuda.calls["memory_snapshot"] == 1


def test_cuda_not_initialized_means_no_device_reads(exporter, fake_torch):
    fake_torch.cuda.initialized = False
    r = start(exporter.url)
    r.step(samples=1)
    exporter.wait_for(lambda p: "training" in p)
    r.stop()
    assert fake_torch.cuda.calls == {"memory_stats": 0, "memory_snapshot": 0, "get_device_properties": 0}
    assert all("devices" not in p for p in exporter.bodies())


def test_timed_collective_uses_cuda_events(exporter, fake_torch):
    from conftest import FakeEvent
    r = start(exporter.url, interval=0.05)
    FakeEvent.clock[0] = 10.0
    with r.timed_collective("all_gather", nbytes=4096):
        FakeEvent.clock[0] = 10.25
    p = exporter.wait_for(lambda p: any(c["op"] == "all_gather" for c in p.get("collectives", [])))
    r.stop()
    c = [c for c in p["collectives"] if c["op"] == "all_gather"][0]
    assert c["durations_seconds"] == [0.25] and c["bytes"] == 4096


def test_unfinished_cuda_events_wait_for_completion(exporter, fake_torch):
    from conftest import FakeEvent
    r = start(exporter.url, interval=0.03)
    FakeEvent.clock[0] = 1.0
    done = []
    orig = FakeEvent.query

    def query(self):
        return bool(done)
    FakeEvent.query = query
    try:
        with r.timed_collective("all_reduce"):
            FakeEvent.clock[0] = 1.5
        time.sleep(0.2)
        assert not any(p.get("collectives") for p in exporter.bodies()), "observed before the event completed"
        done.append(1)
        exporter.wait_for(lambda p: any(c["op"] == "all_reduce" and c["durations_seconds"] == [0.5] for c in p.get("collectives", [])))
    finally:
        FakeEvent.query = orig
        r.stop()


def test_exceptions_of_the_timed_block_propagate(exporter, torch_backend):
    r = start(exporter.url)
    with pytest.raises(ZeroDivisionError):
        with r.timed_collective("all_reduce"):
            1 / 0
    r.stop()


def test_server_down_costs_only_dropped_samples(closed_port, no_torch, caplog):
    caplog.set_level(logging.WARNING, logger="ds_reporter")
    r = start("http://127.0.0.1:%d" % closed_port, interval=0.02, timeout=0.2)
    t0 = time.perf_counter()
    for _ in range(20000):
        r.step(samples=8)
        r.record_collective("all_reduce", 0.001)
    spent = time.perf_counter() - t0
    time.sleep(0.2)
    t1 = time.perf_counter()
    r.stop()
    assert time.perf_counter() - t1 < 3.0, "stop() must not hang on a down exporter"
    assert spent < 10.0
    st = r.stats()
    assert st["pushes"] == 0 and st["failures"] >= 2
    assert "cannot push" in st["last_error"]
    # One warning when it starts failing, not one per sample.
    assert 1 <= len([m for m in caplog.messages if "cannot push" in m]) <= 3


def test_a_hanging_exporter_is_cut_off_by_the_timeout(no_torch):
    # Accepts connections, never answers.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = start("http://127.0.0.1:%d" % srv.getsockname()[1], interval=0.05, timeout=0.2)
        t0 = time.perf_counter()
        for _ in range(1000):
            r.step(samples=1)
        assert time.perf_counter() - t0 < 2.0, "the host's calls never wait on the network"
        time.sleep(0.6)
        t1 = time.perf_counter()
        r.stop()
        assert time.perf_counter() - t1 < 2.5
        assert r.stats()["failures"] >= 1 and "timed out" in str(r.stats()["last_error"])
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_rejections_are_logged_and_survived(exporter, no_torch, caplog):
    caplog.set_level(logging.WARNING, logger="ds_reporter")
    exporter.status = 400
    r = start(exporter.url, interval=0.02)
    r.step(samples=1)
    time.sleep(0.2)
    exporter.status = 202
    exporter.wait_for(lambda p: p.get("training", {}).get("samples") == 1)
    r.stop()
    assert any("HTTP 400" in m and "reserved_bytes" in m for m in caplog.messages)


def test_bounded_buffers(exporter, no_torch):
    r = start(exporter.url, interval=3600)  # nothing pushed until stop()
    for i in range(5000):
        r.record_collective("all_reduce", 0.001)
    for i in range(50):
        r.record_collective("op%d" % i, 0.001)
    r.record_collective("bad op\n\"name", 0.001)
    r.record_collective("x", float("nan"))
    r.record_collective("x", -1)
    r.record_collective("x", "not a number")
    r.step(samples=-5)
    r.step(samples="garbage")
    r.stop()
    p = exporter.bodies()[-1]
    ops = {c["op"]: c for c in p["collectives"]}
    assert len(ops) <= 32
    assert len(ops["all_reduce"]["durations_seconds"]) == 1024
    assert r.stats()["dropped_observations"] >= 5000 - 1024
    assert "training" not in p


def test_token_header(exporter, no_torch, monkeypatch):
    r = start(exporter.url, token="s3cret")
    r.step(samples=1)
    exporter.wait_for(lambda p: "training" in p)
    r.stop()
    assert exporter.headers[-1].get("Authorization") == "Bearer s3cret"
    monkeypatch.setenv("DS_REPORTER_TOKEN", "from-env\n")
    r = start(exporter.url)
    r.stop()
    assert exporter.headers[-1].get("Authorization") == "Bearer from-env"


def test_labels_are_sanitized_to_the_schema(exporter, no_torch):
    r = start(exporter.url, job="a\x00b" + "j" * 300, host="h\nx", rank=-4)
    r.stop()
    rep = exporter.bodies()[-1]["reporter"]
    assert rep["job"].startswith("a_b") and len(rep["job"]) == 128
    assert rep["host"] == "h_x" and rep["rank"] == 0


def test_a_broken_torch_never_kills_the_thread(exporter, fake_torch, caplog):
    caplog.set_level(logging.WARNING, logger="ds_reporter")
    def boom(device=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    fake_torch.cuda.memory_stats = boom
    r = start(exporter.url, interval=0.02)
    r.step(samples=5)
    exporter.wait_for(lambda p: p.get("training", {}).get("samples") == 5)
    r.step(samples=5)
    exporter.wait_for(lambda p: p.get("training", {}).get("samples") == 10)
    r.stop()
    assert "illegal memory access" in str(r.stats()["last_error"])
    assert len([m for m in caplog.messages if "illegal memory access" in m]) == 1, "logged once, not every interval"


def test_start_with_nonsense_never_raises(no_torch):
    r = ds_reporter.start(url="http://127.0.0.1:1", interval=-3, nonsense_option=True)
    r.step(samples=1)
    r.record_collective("all_reduce", 0.1)
    with r.timed_collective("x"):
        pass
    r.stop()
    r.stop()


def test_url_forms():
    assert ds_reporter.Reporter(url="http://h:1/")._url == "http://h:1/api/v1/push"
    assert ds_reporter.Reporter(url="http://h:1/api/v1/push")._url == "http://h:1/api/v1/push"


def test_uuid_spelling():
    class T:
        class cuda:
            @staticmethod
            def get_device_properties(i):
                class P:
                    uuid = ["6f5b0e8d-1c2a-4e3b-9a7c-000000000001", "MIG-abc", "weird uuid !"][i]
                return P
    assert _torch.device_uuid(T, 0) == "GPU-6f5b0e8d-1c2a-4e3b-9a7c-000000000001"
    assert _torch.device_uuid(T, 1) == "MIG-abc"
    assert _torch.device_uuid(T, 2) == ""
