"""Record a golden NVML capture on a real GPU machine: ``python -m comfyui_exporter.gpu.capture > c.json``.

Why this exists: the GPU tests replay captures through ``fake.FakeNvml`` because CI has no GPU. This
script records what the *real* NVML returns, through the very same :class:`~.nvml.PynvmlNvml` the
exporter uses, in the format the fake reads, so a capture from a new machine (or a new driver) can be
dropped into tests/fixtures/nvml/ and get golden .prom files (see tests/fixtures/nvml/README.md).

It reads every device field ``--samples`` times, ``--interval`` seconds apart, and records NVML XID
events that arrive meanwhile (and for ``--xid-seconds`` after the last sample). Errors are recorded as
``{"error": "NOT_SUPPORTED"}`` etc. Without NVML it still prints a capture (with ``init.error``) and
exits 1. UUIDs and PCI bus ids identify hardware; the host name is not recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from importlib import metadata
from typing import Any

import pynvml

from .fake import CAPTURE_FORMAT, CAPTURE_VERSION
from .source.nvml import DEVICE_FIELDS, ERROR_NAMES, NvmlLike, PynvmlNvml


def _error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, pynvml.NVMLError):
        return {"error": ERROR_NAMES.get(getattr(exc, "value", -1), "unknown").upper()}
    return {"error": "UNKNOWN"}


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def record(call: Callable[[], Any]) -> Any:
    """The JSON form of one NVML answer: the value, or {"error": NAME} for any failure."""
    try:
        return _jsonable(call())
    except Exception as exc:
        return _error(exc)


def record_sample(nvml: NvmlLike, t: float) -> dict[str, Any]:
    """One read of every device field, in the order the collector reads them."""
    count = record(nvml.device_count)
    sample: dict[str, Any] = {"t": round(t, 3), "device_count": count, "devices": []}
    for index in range(count if isinstance(count, int) else 0):
        device = {}
        for what in DEVICE_FIELDS:
            reader = getattr(nvml, what)
            device[what] = record(lambda reader=reader, index=index: reader(index))
        sample["devices"].append(device)
    return sample


def capture(
    nvml: NvmlLike,
    *,
    samples: int = 3,
    interval: float = 1.0,
    xid_seconds: float = 0.0,
    note: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Any], int]:
    """Build a capture dict; the int is the exit status (1 when NVML could not be initialised)."""
    try:
        version = metadata.version("nvidia-ml-py")
    except metadata.PackageNotFoundError:
        version = "unknown"
    out: dict[str, Any] = {
        "format": CAPTURE_FORMAT,
        "version": CAPTURE_VERSION,
        "provenance": {
            "kind": "captured",
            "tool": "python -m comfyui_exporter.gpu.capture",
            "nvidia_ml_py": version,
            "captured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "note": note,
        },
        "init": None,
        "system": {},
        "samples": [],
        "xid": {"register": {}, "events": []},
    }
    try:
        nvml.init()
    except Exception as exc:
        out["init"] = _error(exc)
        return out, 1
    try:
        out["system"] = {
            "driver_version": record(nvml.driver_version),
            "cuda_driver_version": record(nvml.cuda_driver_version),
        }
        count = record(nvml.device_count)
        for index in range(count if isinstance(count, int) else 0):
            outcome = record(lambda index=index: nvml.xid_register(index))
            out["xid"]["register"][str(index)] = outcome
        start = clock()
        for k in range(max(samples, 1)):
            out["samples"].append(record_sample(nvml, clock() - start))
            last = k == max(samples, 1) - 1
            _collect_events(nvml, out, k, start, clock, xid_seconds if last else interval)
    finally:
        for step in (nvml.xid_close, nvml.shutdown):
            try:
                step()
            except Exception as exc:
                print(f"capture: NVML {step.__name__} failed: {exc}", file=sys.stderr)
    return out, 0


def _collect_events(
    nvml: NvmlLike, out: dict[str, Any], sample: int, start: float, clock: Callable[[], float], seconds: float
) -> None:
    """Wait up to `seconds` for XID events, attaching each to the sample just read."""
    deadline = clock() + seconds
    while (left := deadline - clock()) > 0:
        try:
            event = nvml.xid_wait(max(1, int(left * 1000)))
        except Exception as exc:
            out["xid"]["events"].append({"sample": sample, "t": round(clock() - start, 3), **_error(exc)})
            time.sleep(min(left, 0.5))
            continue
        if event is not None:
            out["xid"]["events"].append(
                {
                    "sample": sample,
                    "t": round(clock() - start, 3),
                    "index": event.index,
                    "uuid": event.uuid,
                    "xid": event.xid,
                }
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comfyui_exporter.gpu.capture",
        description="Print a golden NVML capture (JSON) for tests/fixtures/nvml/.",
    )
    parser.add_argument("--samples", type=int, default=3, help="reads of every device (default 3)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reads (default 1)")
    parser.add_argument(
        "--xid-seconds", type=float, default=0.0, help="wait for XID events after the last read"
    )
    parser.add_argument(
        "--note", default="", help="free text stored in provenance.note (e.g. the machine type)"
    )
    args = parser.parse_args(argv)
    result, status = capture(
        PynvmlNvml(),
        samples=args.samples,
        interval=args.interval,
        xid_seconds=args.xid_seconds,
        note=args.note,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if status:
        print(f"capture: NVML could not be initialised ({result['init']['error']})", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
