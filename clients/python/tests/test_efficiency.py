"""Training efficiency: step times, model FLOPs (given, or 6 x N x T), and what is never sent."""

import logging
import math
import time

import ds_reporter

from test_e2e import exporter_process, scrape, value  # noqa: F401  (fixture and helpers of the real-exporter tests)


def start(url, **kw):
    kw.setdefault("interval", 0.05)
    kw.setdefault("job", "train")
    kw.setdefault("rank", 2)
    return ds_reporter.start(url=url, **kw)


def training(pushes):
    return [p["training"] for p in pushes if "training" in p]


def test_step_times_measured_between_steps_or_given(exporter, no_torch):
    r = start(exporter.url)
    r.step(samples=8)                 # first step: nothing to measure from
    time.sleep(0.05)
    r.step(samples=8)                 # ~50 ms
    time.sleep(0.04)
    r.step(samples=16, steps=2)       # ~40 ms shared by two steps
    r.step(samples=8, seconds=1.25)   # given by the host program
    r.stop()
    t = training(exporter.bodies())
    assert t[-1]["samples"] == 40 and t[-1]["steps"] == 5
    durations = [d for x in t for d in x.get("step_durations_seconds", [])]
    assert len(durations) == 4, durations
    assert 0.045 <= durations[0] < 2, durations
    assert durations[1] == durations[2] and 0.015 <= durations[1] < 1, durations
    assert durations[3] == 1.25
    assert "flops_per_sample" not in t[-1] and "dtype" not in t[-1]


def test_bad_step_times_are_dropped_never_sent(exporter, no_torch):
    r = start(exporter.url)
    for bad in (float("nan"), float("inf"), -1.0, 0.0, 90000.0, "x"):
        r.step(samples=1, seconds=bad)
    r.step(samples=1, seconds=0.5)
    r.stop()
    t = training(exporter.bodies())
    assert t[-1]["steps"] == 6  # "x" is not a number: that call counts nothing
    durations = [d for x in t for d in x.get("step_durations_seconds", [])]
    assert durations == [0.5], durations
    assert r.stats()["dropped_step_times"] == 5


def test_flops_given_or_from_params_and_tokens(exporter, no_torch):
    r = start(exporter.url, flops_per_sample=2.5e12, dtype="fp8")
    r.step(samples=4)
    r.flush()
    p = exporter.wait_for(lambda p: p.get("training", {}).get("flops_per_sample") == 2.5e12)
    assert p["training"]["dtype"] == "fp8"
    # The 6 x N x T rule: 7e9 parameters, 4096 tokens per sample.
    assert r.set_model_flops(params=7e9, tokens_per_sample=4096) is True
    r.step(samples=4)
    r.flush()
    p = exporter.wait_for(lambda p: p.get("training", {}).get("flops_per_sample") == 6 * 7e9 * 4096)
    assert p["training"]["dtype"] == "bf16"
    r.stop()


def test_absurd_flops_turn_the_figure_off_with_one_warning(exporter, no_torch, caplog):
    caplog.set_level(logging.WARNING, logger="ds_reporter")
    r = start(exporter.url, flops_per_sample=1e12)
    for bad in (float("nan"), float("inf"), -3.0, 0.0, 1e25, "many"):
        assert r.set_model_flops(bad) is False
    assert r.set_model_flops(1e12, dtype="fp4") is False
    assert r.set_model_flops(params=1e9) is False   # tokens per sample missing
    r.step(samples=4)
    r.stop()
    t = training(exporter.bodies())
    assert t and all("flops_per_sample" not in x for x in t), t
    warnings = [rec.getMessage() for rec in caplog.records if "model FLOPs not reported" in rec.getMessage()]
    assert warnings, caplog.records
    assert r.stats()["failures"] >= 1


def test_model_flops_and_step_times_reach_the_real_exporter(exporter_process):  # noqa: F811
    url = exporter_process
    r = ds_reporter.start(url=url, interval=0.2, job="mfu", rank=0, token="e2e-token", params=1e9, tokens_per_sample=1000)
    for _ in range(5):
        r.step(samples=10, seconds=0.25)
    r.stop()
    deadline = time.monotonic() + 20
    while True:
        m = scrape(url)
        flops = value(m, "ds_training_model_flops_total", job="mfu", rank=0, dtype="bf16")
        if flops == 50 * 6e12 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert flops == 50 * 6e12
    assert value(m, "ds_training_step_seconds_count", job="mfu", rank=0) == 5
    assert math.isclose(value(m, "ds_training_step_seconds_sum", job="mfu", rank=0), 1.25)
