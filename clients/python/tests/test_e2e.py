"""End to end: the reporter pushes to a real ds-exporter process; /metrics shows the
fragmentation and training throughput it computed."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

import ds_reporter

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MAIN = os.path.join(ROOT, "src", "main.ts")
TSX = os.path.join(ROOT, "node_modules", "tsx")

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and os.path.exists(MAIN) and os.path.isdir(TSX)),
    reason="needs node and the exporter's node_modules (npm ci at the repository root)",
)


def parse(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            out.append((m.group(1), labels, float(m.group(4))))
    return out


def value(samples, name, **labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


@pytest.fixture
def exporter_process():
    tmp = tempfile.mkdtemp()
    token_file = os.path.join(tmp, "tokens")
    with open(token_file, "w") as f:
        f.write("e2e-token\n")
    cmd = ["node", "--import", "tsx", MAIN, "--web.listen-address=127.0.0.1:0", "--no-collector.gpu",
           "--sample.interval=200ms", "--push.throughput-window=5s", "--push.token-file=" + token_file]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = {}
    lines = []

    def read():
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r'msg="ds-exporter listening".*address=([\d.]+):(\d+)', line)
            if m:
                found["url"] = "http://%s:%s" % (m.group(1), m.group(2))
    threading.Thread(target=read, daemon=True).start()
    end = time.monotonic() + 90
    while "url" not in found and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    try:
        if "url" not in found:
            pytest.fail("exporter did not start: %s" % "".join(lines[-20:]))
        yield found["url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def scrape(url):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url + "/metrics", timeout=10) as r:
        return parse(r.read().decode())


def test_reporter_to_real_exporter(exporter_process, fake_torch):
    url = exporter_process
    # Without the token the exporter refuses the push.
    req = urllib.request.Request(url + "/api/v1/push", data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10)
    assert e.value.code == 401

    r = ds_reporter.start(url=url, interval=0.2, job="e2e", rank=1, token="e2e-token", snapshot_interval=0.5)
    total = 0
    t0 = time.time()
    while time.time() - t0 < 4.0:
        r.step(samples=50)
        total += 50
        r.record_collective("all_reduce", 0.003, nbytes=1 << 20)
        time.sleep(0.05)
    elapsed = time.time() - t0
    r.stop()
    assert r.stats()["pushes"] >= 5, r.stats()
    expected_rate = total / elapsed

    pid = os.getpid()
    deadline = time.monotonic() + 20
    while True:
        m = scrape(url)
        samples_total = value(m, "ds_training_samples_total", job="e2e", rank=1)
        if samples_total == total or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert samples_total == total
    uuid0 = "GPU-6f5b0e8d-1c2a-4e3b-9a7c-000000000000"
    assert value(m, "ds_gpu_memory_fragmentation_ratio", gpu=0, uuid=uuid0, pid=pid, job="e2e") == 0.25
    assert value(m, "ds_gpu_memory_fragmentation_ratio", gpu=2, pid=pid, job="e2e") == 0.75
    assert value(m, "ds_allocator_reserved_bytes", gpu=0, pid=pid, job="e2e") == 8 << 30
    assert value(m, "ds_allocator_largest_free_block_bytes", gpu=0, pid=pid, job="e2e") == 3 * (1 << 30) // 4
    assert value(m, "ds_allocator_ooms_total", gpu=0, pid=pid, job="e2e") == 1
    rate = value(m, "ds_training_throughput_samples_per_second", job="e2e", rank=1)
    assert rate is not None and abs(rate - expected_rate) / expected_rate < 0.35, (rate, expected_rate)
    count = value(m, "ds_comm_collective_latency_seconds_count", op="all_reduce", job="e2e")
    assert count == total / 50, (count, total / 50)
    assert value(m, "ds_comm_collective_bytes_total", op="all_reduce", job="e2e") == (total / 50) * (1 << 20)
    assert value(m, "ds_exporter_push_requests_total", code=401) >= 1
