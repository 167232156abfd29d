"""Reports a PyTorch process's allocator state, training progress and collective timings
to the ds-exporter on the same host (``POST /api/v1/push``).

    import ds_reporter
    r = ds_reporter.start(url="http://127.0.0.1:9842", interval=1.0, job="train")
    ...
    r.step(samples=batch_size)
    with r.timed_collective("all_reduce", nbytes=grad.numel() * grad.element_size()):
        dist.all_reduce(grad)
    ...
    r.stop()

Standard library only. torch is never imported by the reporter: it is used when the host
program has imported it. Nothing here raises into the host program.
"""

from ._reporter import Reporter, start

__all__ = ["Reporter", "start", "__version__"]
__version__ = "0.1.0"
