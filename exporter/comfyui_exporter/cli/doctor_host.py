"""The host half of ``comfyui-exporter doctor``: web config, NVML and GPUs, GPU mapping, listen address.

The GPU checks use ``comfyui_exporter.gpu`` when it is installed and say so when it is not; a
missing NVML is a warning (GPU metrics will be absent) unless ``--gpu-expected-count`` says GPUs
must be there, because then the ComfyUIGPUMissing alert will fire: that is broken.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import warnings
from collections.abc import Callable
from typing import Any

import requests

from ..config.settings import ConfigError, ExporterConfig
from .doctor_check import FAIL, INFO, OK, SKIP, WARN, Check

GIB = 1024**3


def check_web_config(config: ExporterConfig) -> list[Check]:
    if not config.web_config_file:
        return []
    from ..exposition.webconfig import load_web_config

    try:
        web = load_web_config(config.web_config_file)
    except ConfigError as exc:
        return [
            Check(
                "web-config",
                "host",
                FAIL,
                str(exc),
                "fix the file (docs/security.md); the exporter will not start with it",
            )
        ]
    users = len(web.users)
    return [
        Check(
            "web-config",
            "host",
            OK,
            f"{config.web_config_file}: {'TLS' if web.tls else 'plain HTTP'}, "
            f"{users} basic auth user{'s' if users != 1 else ''}",
        )
    ]


def _nvml(factory: Callable[[], Any] | None) -> tuple[Any | None, str]:
    if factory is not None:
        return factory(), ""
    try:
        from ..gpu.source.nvml import PynvmlNvml
    except ImportError as exc:
        return None, f"GPU support is not installed ({exc.name or exc})"
    return PynvmlNvml(), ""


def check_gpus(
    config: ExporterConfig, systems: dict[str, dict[str, Any] | None], nvml_factory: Callable[[], Any] | None
) -> list[Check]:
    """NVML, its GPUs, and which GPU each reachable instance runs on."""
    if not config.gpu_enabled:
        return [Check("nvml", "host", SKIP, "GPU metrics are off (--no-gpu)")]
    expected = config.gpu_expected_count
    nvml, missing = _nvml(nvml_factory)
    if nvml is None:
        result = FAIL if expected else WARN
        return [
            Check(
                "nvml",
                "host",
                result,
                missing + "; GPU metrics will be absent",
                "pip install 'comfyui-exporter' with nvidia-ml-py, or run with --no-gpu",
            )
        ]
    try:
        nvml.init()
    except Exception as exc:
        result = FAIL if expected else WARN
        return [
            Check(
                "nvml",
                "host",
                result,
                f"NVML does not start: {exc}; GPU metrics will be absent",
                "on a GPU host install the NVIDIA driver (libnvidia-ml.so.1); in a container run with "
                "--gpus all (NVIDIA_DRIVER_CAPABILITIES must include utility); without GPUs use --no-gpu",
            )
        ]
    try:
        return _gpu_rows(nvml, config, systems)
    finally:
        with contextlib.suppress(Exception):
            nvml.shutdown()


def _gpu_rows(nvml: Any, config: ExporterConfig, systems: dict[str, dict[str, Any] | None]) -> list[Check]:
    from ..gpu.mapping import ComfyDevice, GpuMapping, map_devices
    from ..gpu.source.read import KnownGpu

    rows: list[Check] = []
    count = int(nvml.device_count())
    try:
        from ..gpu.source.nvml import cuda_version_string

        driver = f"driver {nvml.driver_version()}, CUDA {cuda_version_string(nvml.cuda_driver_version())}"
    except Exception:
        driver = "driver version unknown"
    expected = config.gpu_expected_count
    if expected is not None and count != expected:
        rows.append(
            Check(
                "nvml",
                "host",
                FAIL,
                f"{driver}: {count} GPU(s), but --gpu-expected-count is {expected}",
                "a GPU fell off the bus or is not passed into the container "
                "(nvidia-smi; dmesg | grep -i xid)",
            )
        )
    else:
        rows.append(Check("nvml", "host", OK, f"{driver}: {count} GPU(s)"))
    known = []
    for index in range(count):
        try:
            uuid, name = nvml.uuid(index), nvml.name(index)
            total = nvml.memory_info(index).total
        except Exception as exc:
            rows.append(
                Check(
                    f"gpu-{index}",
                    "host",
                    WARN,
                    f"does not answer: {exc}",
                    f"nvidia-smi -q -i {index}; a lost GPU usually needs a reset or a reboot",
                )
            )
            continue
        known.append(KnownGpu(index=index, uuid=uuid, name=name, memory_total=total))
        rows.append(Check(f"gpu-{index}", "host", INFO, f"{name}, {uuid}, {total / GIB:.1f} GiB"))
    devices = []
    for instance in config.instances:
        stats = systems.get(instance.name)
        if stats is None:
            rows.append(Check("gpu-mapping", instance.name, SKIP, "ComfyUI not reachable"))
            continue
        device = (stats.get("devices") or [{}])[0]
        argv = stats.get("system", {}).get("argv")
        devices.append(
            ComfyDevice(
                instance=instance.name,
                name=device.get("name"),
                type=device.get("type"),
                index=device.get("index") if isinstance(device.get("index"), int) else None,
                vram_total=device.get("vram_total") if isinstance(device.get("vram_total"), int) else None,
                argv=tuple(str(a) for a in argv) if isinstance(argv, list) else (),
                override_uuid=instance.gpu_uuid,
                listed=tuple(str(d.get("name")) for d in stats.get("devices") or [] if isinstance(d, dict)),
            )
        )
    fix = "pin it: gpu: GPU-<uuid> in the config file, or NAME=URL@GPU-<uuid> in --comfyui-url (uuids above)"
    for result in map_devices(devices, known):
        if isinstance(result, GpuMapping) and result.gpu:
            rows.append(
                Check(
                    "gpu-mapping",
                    result.instance,
                    OK,
                    f"GPU {result.gpu} ({result.uuid}), by {result.method}",
                )
            )
        elif isinstance(result, GpuMapping):
            rows.append(
                Check(
                    "gpu-mapping",
                    result.instance,
                    INFO,
                    f"pinned to {result.uuid}, which is not on this host (ComfyUI elsewhere?)",
                )
            )
        elif "not a CUDA GPU" in result.reason:
            rows.append(Check("gpu-mapping", result.instance, INFO, result.reason))
        else:
            rows.append(Check("gpu-mapping", result.instance, WARN, result.reason, fix))
    return rows


def check_listen(config: ExporterConfig) -> Check:
    """Can the exporter bind its address? If not, is it a running exporter (fine) or something else?"""
    host, port = config.listen_host, config.listen_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the exporter's server does
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if _is_exporter(host, port):
                return Check(
                    "listen",
                    "host",
                    WARN,
                    f"{where} is in use by a running comfyui-exporter",
                    "fine if that is the one you are checking; otherwise stop it or pick another --listen",
                )
            return Check(
                "listen",
                "host",
                FAIL,
                f"{where} is in use by another program",
                f"find it with: ss -ltnp 'sport = :{port}'; or choose another --listen / listen",
            )
        if exc.errno == errno.EACCES:
            return Check(
                "listen", "host", FAIL, f"no permission to listen on {where}", "use a port above 1023"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return Check(
                "listen",
                "host",
                FAIL,
                f"{host} is not an address of this host",
                "use 0.0.0.0, 127.0.0.1 or an address this host has",
            )
        return Check(
            "listen", "host", FAIL, f"cannot listen on {where}: {exc.strerror}", "choose another --listen"
        )
    finally:
        sock.close()
    return Check("listen", "host", OK, f"{where} is free")


def _is_exporter(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    target = f"[{target}]" if ":" in target else target
    for scheme in ("http", "https"):
        try:
            with warnings.catch_warnings():  # verify=False: only asking who is there
                warnings.simplefilter("ignore")
                response = requests.get(f"{scheme}://{target}:{port}/", timeout=2, verify=False)
        except requests.RequestException:
            continue
        if "ComfyUI exporter" in response.text or "comfyui-exporter" in response.headers.get(
            "WWW-Authenticate", ""
        ):
            return True
    return False
