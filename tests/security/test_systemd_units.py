"""deploy/systemd: both units carry the hardening they promise (and systemd agrees, where it is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
HARDENING = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (systemd keys repeat, so configparser will not do)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize("name", ["comfyui-exporter.service", "comfyui-alert-relay.service"])
def test_unit_is_hardened(name: str) -> None:
    unit = parse_unit(UNITS / name)
    service = unit["Service"]
    for key, expected in HARDENING.items():
        assert service.get(key) == [expected], f"{name}: {key}={service.get(key)}, want {expected!r}"
    families = service["RestrictAddressFamilies"][0].split()
    assert set(families) <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} and "AF_INET" in families
    filters = service["SystemCallFilter"]
    assert filters[0] == "@system-service" and any(f.startswith("~") and "@privileged" in f for f in filters)
    assert all(c.count(":") == 1 and c.split(":")[1].startswith("/") for c in service["LoadCredential"])
    assert service["ExecStart"][0].split()[0].startswith("/"), "ExecStart needs an absolute path"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_exporter_unit_reloads_with_sighup_and_reaches_the_gpus() -> None:
    service = parse_unit(UNITS / "comfyui-exporter.service")["Service"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "--config" in service["ExecStart"][0]
    assert service["DevicePolicy"] == ["closed"]
    assert "char-nvidia-frontend rw" in service["DeviceAllow"]


def test_relay_unit_keeps_its_journal_in_the_state_directory() -> None:
    service = parse_unit(UNITS / "comfyui-alert-relay.service")["Service"]
    assert service["StateDirectory"] == ["comfyui-alert-relay"]
    assert service["StateDirectoryMode"] == ["0700"]
    assert service["PrivateDevices"] == ["yes"]
    assert len(service["LoadCredential"]) >= 2


@pytest.mark.parametrize("name", ["comfyui-exporter.service", "comfyui-alert-relay.service"])
def test_systemd_accepts_the_unit(name: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` (syntax) and ``security --offline`` (exposure below 2.0)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    text = (UNITS / name).read_text()
    binary = parse_unit(UNITS / name)["Service"]["ExecStart"][0].split()[0]
    (tmp_path / name).write_text(text.replace(binary, "/bin/sleep"))  # verify wants an executable
    verify = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in security.stderr and "unrecognized" in security.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr
