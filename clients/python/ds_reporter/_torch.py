"""Reads allocator state through torch, if and only if the host program imported it."""

import re
import sys
from typing import Any, Dict, List, Optional

_BARE_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def loaded_torch() -> Optional[Any]:
    """The torch module when the host program has imported it; importing it here would
    cost seconds and memory in programs that never use it."""
    return sys.modules.get("torch")


def cuda_ready(torch: Any) -> bool:
    """True when the process has initialized CUDA. The reporter never initializes it
    itself: that would create a context (hundreds of MiB) on every device."""
    try:
        cuda = torch.cuda
        return bool(cuda.is_initialized())
    except Exception:
        return False


def device_uuid(torch: Any, index: int) -> str:
    """The device's UUID in NVML's spelling (``GPU-...``), or "" when torch does not say."""
    try:
        raw = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:
        return ""
    if _BARE_UUID.match(raw):
        return "GPU-" + raw
    return raw if re.match(r"^[A-Za-z0-9_.:/-]{1,96}$", raw) else ""


def read_devices(torch: Any, only: Optional[List[int]], uuids: Dict[int, str]) -> List[Dict[str, int]]:
    """Allocator stats of every device the process used (or of ``only``)."""
    cuda = torch.cuda
    out = []
    indices = only if only is not None else range(int(cuda.device_count()))
    for i in indices:
        stats = cuda.memory_stats(i)
        if not stats:
            continue
        reserved = int(stats.get("reserved_bytes.all.current", 0))
        used = reserved or stats.get("reserved_bytes.all.peak", 0) or stats.get("num_ooms", 0)
        if only is None and not used:
            continue  # a device this process never touched
        if i not in uuids:
            uuids[i] = device_uuid(torch, i)
        allocated = int(stats.get("allocated_bytes.all.current", 0))
        out.append({
            "index": int(i),
            "uuid": uuids[i],
            "reserved_bytes": reserved,
            # Both come from one locked read of the allocator; the clamp only guards
            # against a torch that would report them from different moments.
            "allocated_bytes": min(allocated, reserved),
            "inactive_split_bytes": int(stats.get("inactive_split_bytes.all.current", 0)),
            "num_alloc_retries": int(stats.get("num_alloc_retries", 0)),
            "num_ooms": int(stats.get("num_ooms", 0)),
        })
    return out


def largest_free_blocks(torch: Any) -> Dict[int, int]:
    """Largest inactive (free) block inside reserved segments, per device, from
    ``torch.cuda.memory_snapshot()``; devices with segments but no free block get 0."""
    out: Dict[int, int] = {}
    for seg in torch.cuda.memory_snapshot():
        dev = int(seg.get("device", 0))
        best = out.get(dev, 0)
        for block in seg.get("blocks", ()):
            if block.get("state") == "inactive":
                best = max(best, int(block.get("size", 0)))
        out[dev] = best
    return out


def cuda_event(torch: Any) -> Optional[Any]:
    """A recorded timing event on the current stream, or None when CUDA is not in use."""
    if not cuda_ready(torch):
        return None
    try:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev
    except Exception:
        return None
