"""The shipped HA configuration (docs/ha.md) fits together without an engine or a cluster:

* compose: docker-compose.yml + deploy/compose/ha.yml with the `ha` profile is valid (compose v2's
  own loader), both Prometheus replicas load prometheus-ha.yml with different `replica` values, every
  Alertmanager prometheus-ha.yml lists is a service of the stack, and every peer lists the others;
* prometheus/prometheus-ha.yml: promtool accepts it, `replica` is an external label that is dropped
  from alerts, and it scrapes the same jobs as prometheus.yml (same rules, same `job` labels);
* Kubernetes (deploy/kubernetes/ha): two Prometheus replicas with the `replica` label that select the
  component's ServiceMonitor and PrometheusRule, and three Alertmanager peers they send to.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from deploy_helpers import REPO, compose_binary, tool

HA_FILE = REPO / "deploy" / "compose" / "ha.yml"
PROM_HA = REPO / "prometheus" / "prometheus-ha.yml"
K8S = REPO / "deploy" / "kubernetes"
PEERS = ["alertmanager", "alertmanager-2", "alertmanager-3"]


@cache
def _resolved(*profiles: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and not k.endswith("_FILE")}
    args = [a for p in profiles for a in ("--profile", p)]
    proc = subprocess.run(
        [
            compose_binary(),
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(HA_FILE),
            *args,
            "config",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _flag(command: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in command if a.startswith(f"--{name}=")]


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_compose_ha_profile_runs_two_replicas_and_three_peers() -> None:
    services = _resolved("ha", "cpu")["services"]
    replicas = {}
    for name in ("prometheus", "prometheus-2"):
        svc = services[name]
        assert _flag(svc["command"], "config.file") == ["/etc/prometheus/prometheus-ha.yml"], name
        assert "expand-external-labels" in _flag(svc["command"], "enable-feature"), name
        replicas[name] = svc["environment"]["PROMETHEUS_REPLICA"]
        assert any(v["target"] == "/prometheus" and v["type"] == "volume" for v in svc["volumes"]), name
    assert len(set(replicas.values())) == 2, f"replicas must differ: {replicas}"
    assert {v["source"] for v in (services["prometheus"]["volumes"])} != {
        v["source"] for v in services["prometheus-2"]["volumes"]
    }, "the replicas must not share a TSDB"

    for name in PEERS:
        command = services[name]["command"]
        assert _flag(command, "cluster.listen-address") == ["0.0.0.0:9094"], name
        assert sorted(_flag(command, "cluster.peer")) == sorted(f"{p}:9094" for p in PEERS if p != name), name
        secrets = {s["target"] for s in services[name]["secrets"]}
        assert "/etc/alertmanager/secrets/relay_token" in secrets, name
    urls = {_flag(services[n]["command"], "web.external-url")[0] for n in PEERS}
    assert len(urls) == 3, "each peer's external URL must be its own (links in notifications)"
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", port


def test_every_alertmanager_prometheus_ha_lists_is_a_peer() -> None:
    services = _resolved("ha", "cpu")["services"]
    config = _load(PROM_HA)
    [am_block] = config["alerting"]["alertmanagers"]
    targets = [t for s in am_block["static_configs"] for t in s["targets"]]
    assert sorted(t.rsplit(":", 1)[0] for t in targets) == sorted(PEERS)
    assert all(t.endswith(":9093") and t.rsplit(":", 1)[0] in services for t in targets)


def test_without_the_ha_profile_no_peer_is_started() -> None:
    services = _resolved("cpu")["services"]
    assert "prometheus-2" not in services and "alertmanager-2" not in services


def test_prometheus_ha_yml_drops_replica_from_alerts_and_matches_the_default_config() -> None:
    config = _load(PROM_HA)
    assert config["global"]["external_labels"]["replica"] == "${PROMETHEUS_REPLICA}"
    drops = config["alerting"]["alert_relabel_configs"]
    assert {"action": "labeldrop", "regex": "replica"} in drops
    default = _load(REPO / "prometheus" / "prometheus.yml")
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        j["job_name"] for j in default["scrape_configs"]
    ]
    assert config["rule_files"] == default["rule_files"]
    proc = subprocess.run(
        [tool("promtool"), "check", "config", str(PROM_HA)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _k8s(kind: str) -> dict[str, Any]:
    [doc] = [
        d
        for p in (K8S / "ha").glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
        if d and d.get("kind") == kind
    ]
    return doc


def test_kubernetes_ha_selects_the_component_and_sends_to_every_peer() -> None:
    prom, am = _k8s("Prometheus"), _k8s("Alertmanager")
    assert prom["spec"]["replicas"] == 2 and prom["spec"]["replicaExternalLabelName"] == "replica"
    assert am["spec"]["replicas"] == 3
    # the operator's headless Service has every Alertmanager pod behind it (port name `web`)
    assert prom["spec"]["alerting"]["alertmanagers"] == [{"name": "alertmanager-operated", "port": "web"}]
    component = K8S / "exporter"
    for kind, file, selector in (
        ("ServiceMonitor", "servicemonitor.yaml", "serviceMonitorSelector"),
        ("PrometheusRule", "prometheusrule.yaml", "ruleSelector"),
    ):
        labels = _load(component / file)["metadata"]["labels"]
        wanted = prom["spec"][selector]["matchLabels"]
        assert all(labels.get(k) == v for k, v in wanted.items()), f"{selector} does not select the {kind}"
    mounts = {m["mountPath"] for m in am["spec"]["volumeMounts"]}
    assert "/etc/alertmanager/secrets" in mounts, "alertmanager.yml reads its secrets there"
    kustomization = _load(K8S / "ha" / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == ["alertmanager.yaml", "prometheus.yaml"]
