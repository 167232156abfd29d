"""The background reporter: one daemon thread, bounded buffers, short timeouts."""

import atexit
import collections
import contextlib
import json
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

from . import _torch

log = logging.getLogger("ds_reporter")

# Bounds of one push, as the exporter's schema sets them (docs/push-api.md).
MAX_OPS = 32
MAX_DURATIONS_PER_OP = 1024
MAX_DURATION_SECONDS = 3600.0
MAX_SAFE = 2**53 - 1
MAX_STEP_SECONDS = 86400.0
MAX_STEP_DURATIONS = 1024
# More than this per sample is a unit mistake (per second, per global batch), not a model.
MAX_FLOPS_PER_SAMPLE = 1e20
DTYPES = ("bf16", "fp8")
_OP_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _label(text: Any, limit: int, default: str) -> str:
    s = _CONTROL.sub("_", str(text))[:limit]
    return s or default


def _op_name(op: Any) -> str:
    s = _OP_BAD.sub("_", str(op))
    if not s or not s[0].isalpha():
        s = "op_" + s
    return s[:64]


class Reporter:
    """Collects training progress and collective timings from the host program and pushes
    them, with the allocator state torch reports, to ds-exporter every ``interval`` seconds.

    Every public method is safe to call from any thread and never raises.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:9842",
        interval: float = 1.0,
        job: Optional[str] = None,
        rank: Optional[int] = None,
        token: Optional[str] = None,
        timeout: float = 0.5,
        snapshot_interval: float = 10.0,
        devices: Optional[List[int]] = None,
        max_pending_events: int = 4096,
        host: Optional[str] = None,
        flops_per_sample: Optional[float] = None,
        params: Optional[float] = None,
        tokens_per_sample: Optional[float] = None,
        dtype: str = "bf16",
    ) -> None:
        self._url = self._push_url(url)
        self._interval = interval if isinstance(interval, (int, float)) and interval > 0 else 1.0
        self._timeout = timeout if isinstance(timeout, (int, float)) and timeout > 0 else 0.5
        self._snapshot_interval = snapshot_interval if isinstance(snapshot_interval, (int, float)) else 10.0
        self._devices = list(devices) if devices is not None else None
        self._job = _label(job or os.environ.get("DS_REPORTER_JOB") or "default", 128, "default")
        try:
            self._rank = int(rank if rank is not None else os.environ.get("RANK", 0))
        except (TypeError, ValueError):
            self._rank = 0
        self._rank = min(max(self._rank, 0), 1_000_000)
        self._host = _label(host or socket.gethostname(), 253, "localhost")
        tok = token if token is not None else os.environ.get("DS_REPORTER_TOKEN")
        self._token = tok.strip() if tok else None

        self._lock = threading.Lock()
        self._samples = 0
        self._steps = 0
        self._stepped = False
        self._step_times: Deque[float] = collections.deque(maxlen=MAX_STEP_DURATIONS)
        self._last_step: Optional[float] = None
        self._flops: Optional[float] = None
        self._dtype = "bf16"
        self._pending: Dict[str, Deque[float]] = {}
        self._pending_bytes: Dict[str, int] = {}
        self._events: Deque[Tuple[str, Any, Any, Optional[int]]] = collections.deque(maxlen=max(1, int(max_pending_events)))
        self._uuids: Dict[int, str] = {}
        self._largest_free: Dict[int, int] = {}
        self._last_snapshot = -math.inf
        self._stats = {"pushes": 0, "failures": 0, "dropped_observations": 0, "dropped_step_times": 0, "last_error": None}
        # Problems being reported, by kind ("push", "torch"): logged when they start or change.
        self._problems: Dict[str, str] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ds-reporter", daemon=True)
        self._started = False
        self._stopped = False
        # Unverified HTTPS is never used; a proxy from the environment must not carry
        # pushes meant for the exporter on this host.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if flops_per_sample is not None or params is not None or tokens_per_sample is not None:
            self.set_model_flops(flops_per_sample, params=params, tokens_per_sample=tokens_per_sample, dtype=dtype)

    @staticmethod
    def _push_url(url: str) -> str:
        url = (url or os.environ.get("DS_REPORTER_URL") or "http://127.0.0.1:9842").rstrip("/")
        return url if url.endswith("/api/v1/push") else url + "/api/v1/push"

    # ---- the host program's side -------------------------------------------------

    def start(self) -> "Reporter":
        """Starts the background thread (``ds_reporter.start`` does this)."""
        try:
            if not self._started:
                self._started = True
                self._thread.start()
                atexit.register(self._at_exit)
        except Exception as e:  # pragma: no cover - thread creation failing
            log.warning("ds_reporter: could not start: %s", e)
        return self

    def set_model_flops(
        self,
        flops_per_sample: Optional[float] = None,
        *,
        params: Optional[float] = None,
        tokens_per_sample: Optional[float] = None,
        dtype: str = "bf16",
    ) -> bool:
        """Declares the model FLOPs of one training sample (forward and backward), so the
        exporter can compute model FLOPs utilization against the GPUs' peak for ``dtype``
        (``"bf16"`` or ``"fp8"``). Either ``flops_per_sample`` or ``params`` and
        ``tokens_per_sample``, for which the dense-transformer rule 6 x N x T is used (2 N T
        forward, 4 N T backward; attention and recomputation are left out). A figure that is
        not a finite number in (0, 1e20] turns the FLOPs off (logged once): no utilization is
        reported rather than a wrong one. Returns whether the figure was taken."""
        try:
            if flops_per_sample is None and params is not None and tokens_per_sample is not None:
                flops_per_sample = 6.0 * float(params) * float(tokens_per_sample)
            f = float(flops_per_sample) if flops_per_sample is not None else float("nan")
            if not (math.isfinite(f) and 0.0 < f <= MAX_FLOPS_PER_SAMPLE) or dtype not in DTYPES:
                with self._lock:
                    self._flops = None
                self._fail("flops", "model FLOPs not reported: flops_per_sample %r (params %r, tokens_per_sample %r) dtype %r is not a figure in (0, 1e20] for bf16 or fp8" % (flops_per_sample, params, tokens_per_sample, dtype))
                return False
            with self._lock:
                self._flops = f
                self._dtype = dtype
            self._ok("flops", "model FLOPs per sample: %.4g (%s)" % (f, dtype))
            return True
        except Exception:
            with self._lock:
                self._flops = None
            self._fail("flops", "model FLOPs not reported: flops_per_sample %r is not a number" % (flops_per_sample,))
            return False

    def step(self, samples: int = 0, steps: int = 1, seconds: Optional[float] = None) -> None:
        """Counts finished training steps and the samples they processed. ``seconds`` is the
        time the step took on this rank; without it, the wall time since the previous
        ``step()`` call is divided among the ``steps`` counted (the first call has none).
        A time that is not a finite number in (0, 86400] is dropped, never sent."""
        try:
            s, n = int(samples), int(steps)
            if s < 0 or n < 0:
                return
            now = time.monotonic()
            durations: List[float] = []
            if seconds is not None:
                d = float(seconds)
                if math.isfinite(d) and 0.0 < d <= MAX_STEP_SECONDS:
                    durations = [d]
                else:
                    with self._lock:
                        self._stats["dropped_step_times"] += 1
            elif self._last_step is not None and n > 0:
                d = (now - self._last_step) / n
                if 0.0 < d <= MAX_STEP_SECONDS:
                    durations = [d] * min(n, MAX_STEP_DURATIONS)
            with self._lock:
                self._last_step = now
                self._samples = min(self._samples + s, MAX_SAFE)
                self._steps = min(self._steps + n, MAX_SAFE)
                self._stepped = True
                for d in durations:
                    if len(self._step_times) == self._step_times.maxlen:
                        self._stats["dropped_step_times"] += 1
                    self._step_times.append(d)
        except Exception:
            pass

    def record_collective(self, op: str, seconds: float, nbytes: Optional[int] = None) -> None:
        """Records one collective operation that took ``seconds`` (and moved ``nbytes``)."""
        try:
            d = float(seconds)
            if not (0.0 <= d <= MAX_DURATION_SECONDS):
                return
            name = _op_name(op)
            with self._lock:
                q = self._pending.get(name)
                if q is None:
                    if len(self._pending) >= MAX_OPS:
                        self._stats["dropped_observations"] += 1
                        return
                    q = self._pending[name] = collections.deque(maxlen=MAX_DURATIONS_PER_OP)
                if len(q) == q.maxlen:
                    self._stats["dropped_observations"] += 1
                q.append(d)
                if nbytes is not None and int(nbytes) > 0:
                    self._pending_bytes[name] = min(self._pending_bytes.get(name, 0) + int(nbytes), MAX_SAFE)
        except Exception:
            pass

    @contextlib.contextmanager
    def timed_collective(self, op: str, nbytes: Optional[int] = None) -> Iterator[None]:
        """Times the enclosed collective: with CUDA events on the current stream when the
        process uses CUDA (read later by the reporter thread, never synchronizing the host),
        with ``time.perf_counter`` otherwise. Exceptions of the block propagate unchanged."""
        start_ev = None
        try:
            torch = _torch.loaded_torch()
            if torch is not None:
                start_ev = _torch.cuda_event(torch)
        except Exception:
            start_ev = None
        t0 = time.perf_counter()
        try:
            yield
        finally:
            try:
                if start_ev is not None:
                    end_ev = _torch.cuda_event(_torch.loaded_torch())
                    if end_ev is not None:
                        with self._lock:
                            if len(self._events) == self._events.maxlen:
                                self._stats["dropped_observations"] += 1
                            self._events.append((_op_name(op), start_ev, end_ev, nbytes))
                    else:
                        self.record_collective(op, time.perf_counter() - t0, nbytes)
                else:
                    self.record_collective(op, time.perf_counter() - t0, nbytes)
            except Exception:
                pass

    def flush(self) -> None:
        """Asks the thread to push now instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Pushes what is pending one last time and stops the thread. Idempotent."""
        try:
            if self._stopped:
                return
            self._stopped = True
            self._stop.set()
            self._wake.set()
            if self._started and self._thread.is_alive() and threading.current_thread() is not self._thread:
                self._thread.join(timeout if timeout is not None else self._timeout * 2 + 2.0)
            try:
                atexit.unregister(self._at_exit)
            except Exception:
                pass
        except Exception:
            pass

    def stats(self) -> Dict[str, Any]:
        """Counters of the reporter itself (pushes, failures, dropped observations, last error)."""
        with self._lock:
            return dict(self._stats)

    def _at_exit(self) -> None:
        self.stop(timeout=self._timeout + 0.5)

    # ---- the reporter thread -----------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._tick()
            self._wake.wait(self._interval)
            self._wake.clear()
        self._tick()

    def _tick(self) -> None:
        try:
            payload = self._collect()
            if payload is not None:
                self._send(payload)
        except Exception as e:  # never let the thread die
            self._fail("collect", "collect: %s" % e)

    def _collect(self) -> Optional[Dict[str, Any]]:
        payload: Dict[str, Any] = {
            "version": 1,
            "reporter": {"job": self._job, "rank": self._rank, "pid": os.getpid(), "host": self._host},
            "timestamp": time.time(),
        }
        torch = _torch.loaded_torch()
        cuda = torch is not None and _torch.cuda_ready(torch)
        if cuda:
            self._drain_events()
            try:
                devices = _torch.read_devices(torch, self._devices, self._uuids)
                now = time.monotonic()
                if self._snapshot_interval > 0 and now - self._last_snapshot >= self._snapshot_interval:
                    self._last_snapshot = now
                    self._largest_free = _torch.largest_free_blocks(torch)
                for d in devices:
                    if d["index"] in self._largest_free:
                        d["largest_free_block_bytes"] = self._largest_free[d["index"]]
                payload["devices"] = devices[:64]
                self._ok("torch", "reading torch.cuda works again")
            except Exception as e:
                self._fail("torch", "torch.cuda: %s" % e)
        with self._lock:
            if self._stepped:
                training: Dict[str, Any] = {"samples": self._samples, "steps": self._steps}
                if self._step_times:
                    training["step_durations_seconds"] = list(self._step_times)
                    self._step_times.clear()
                if self._flops is not None:
                    training["flops_per_sample"] = self._flops
                    training["dtype"] = self._dtype
                payload["training"] = training
            if self._pending:
                payload["collectives"] = [
                    {"op": op, "durations_seconds": list(q), **({"bytes": self._pending_bytes[op]} if op in self._pending_bytes else {})}
                    for op, q in self._pending.items() if q
                ]
                self._pending = {}
                self._pending_bytes = {}
        return payload

    def _drain_events(self) -> None:
        """Turns completed CUDA event pairs into observations; unfinished ones wait."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        waiting = []
        for op, start_ev, end_ev, nbytes in events:
            try:
                if end_ev.query():
                    self.record_collective(op, start_ev.elapsed_time(end_ev) / 1000.0, nbytes)
                else:
                    waiting.append((op, start_ev, end_ev, nbytes))
            except Exception:
                pass
        with self._lock:
            self._events.extendleft(reversed(waiting))

    def _send(self, payload: Dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        req = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self._timeout) as res:
                res.read()
            with self._lock:
                self._stats["pushes"] += 1
            self._ok("push", "pushing to %s again" % self._url)
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read().decode("utf-8", "replace")).get("error", "")
            except Exception:
                detail = ""
            self._fail("push", "HTTP %d from %s: %s" % (e.code, self._url, detail))
        except Exception as e:
            # Exporter down or slow: this sample is dropped, the next one is cumulative.
            self._fail("push", "cannot push to %s: %s" % (self._url, e))

    def _fail(self, kind: str, why: str) -> None:
        with self._lock:
            self._stats["failures"] += 1
            self._stats["last_error"] = why
        if self._problems.get(kind) != why:
            self._problems[kind] = why
            log.warning("ds_reporter: %s", why)

    def _ok(self, kind: str, message: str) -> None:
        if self._problems.pop(kind, None) is not None:
            log.info("ds_reporter: %s", message)


def start(
    url: str = "http://127.0.0.1:9842",
    interval: float = 1.0,
    job: Optional[str] = None,
    **kwargs: Any,
) -> Reporter:
    """Creates a Reporter and starts its background thread. Options: ``rank`` (default
    ``$RANK`` or 0), ``token`` (default ``$DS_REPORTER_TOKEN``), ``timeout`` (0.5 s),
    ``snapshot_interval`` (10 s; 0 disables ``memory_snapshot()``), ``devices`` (indices;
    default every device the process used), ``host``, ``max_pending_events``,
    ``flops_per_sample`` or ``params`` and ``tokens_per_sample`` (model FLOPs, see
    ``Reporter.set_model_flops``), ``dtype`` (``"bf16"``)."""
    try:
        return Reporter(url=url, interval=interval, job=job, **kwargs).start()
    except Exception as e:
        log.warning("ds_reporter: disabled: %s", e)
        r = Reporter.__new__(Reporter)
        Reporter.__init__(r)
        r._stopped = True
        return r
