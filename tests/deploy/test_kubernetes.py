"""deploy/kubernetes: manifests parse, kinds/apiVersions are right, selectors and ports agree, the
PrometheusRule is generated from prometheus/rules/ and never drifts, and kustomize renders it all."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, tool

K8S = REPO / "deploy" / "kubernetes"
COMPONENT = K8S / "exporter"
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Prometheus": "monitoring.coreos.com/v1",  # ha/
    "Alertmanager": "monitoring.coreos.com/v1",  # ha/
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
RULES_JOB = "comfyui-exporter"  # prometheus/rules use up{job="comfyui-exporter"}


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("gen_rules", K8S / "gen_rules.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def manifest_files() -> list[Path]:
    return sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])


def load_all() -> dict[Path, list[dict[str, Any]]]:
    return {p: [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d] for p in manifest_files()}


def by_kind(docs: dict[Path, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for ds in docs.values() for d in ds if d.get("kind") == kind]


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_parses_with_known_kind_and_api_version(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs, "empty manifest"
    for d in docs:
        kind = d.get("kind")
        assert kind in API_VERSIONS, f"unexpected kind {kind!r}"
        assert d.get("apiVersion") == API_VERSIONS[kind], f"{kind} must be {API_VERSIONS[kind]}"
        if kind not in ("Kustomization", "Component"):
            assert d.get("metadata", {}).get("name"), "metadata.name missing"


def test_kustomizations_reference_existing_files() -> None:
    for path, docs in load_all().items():
        for d in docs:
            if d["kind"] not in ("Kustomization", "Component"):
                continue
            refs = [*d.get("resources", []), *d.get("components", [])]
            refs += [p["path"] for p in d.get("patches", []) if "path" in p]
            for ref in refs:
                assert (path.parent / ref).exists(), f"{path.relative_to(K8S)}: {ref} does not exist"


# ------------------------------------------------------------------------------------------ consistency


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def consistency_problems(docs: dict[Path, list[dict[str, Any]]]) -> list[str]:
    """Cross-object checks: what kubectl apply would accept but would silently not work."""
    problems = []
    [component] = [d for d in by_kind(docs, "Component")]
    [patch_ref] = component["patches"]
    patch = next(d for p, ds in docs.items() if p.name == Path(patch_ref["path"]).name for d in ds)
    target_selector = dict(kv.split("=", 1) for kv in patch_ref["target"]["labelSelector"].split(","))
    [sidecar] = [
        c for c in patch["spec"]["template"]["spec"]["containers"] if c["name"] == "comfyui-exporter"
    ]
    port_names = {p["name"]: p["containerPort"] for p in sidecar.get("ports", [])}
    env_names = {e["name"] for e in sidecar.get("env", [])}
    for arg in sidecar.get("args", []):
        for ref in __import__("re").findall(r"\$\((\w+)\)", arg):
            if ref not in env_names:
                problems.append(f"sidecar arg {arg!r} uses $({ref}) but no env var {ref} is defined")
    listen = [a.split("=", 1)[1] for a in sidecar.get("args", []) if a.startswith("--listen=")]
    if not listen or int(listen[0].rsplit(":", 1)[1]) not in port_names.values():
        problems.append(f"sidecar --listen {listen} is not a declared containerPort {port_names}")
    for probe in ("readinessProbe", "livenessProbe"):
        port = sidecar.get(probe, {}).get("httpGet", {}).get("port")
        if port not in port_names and port not in port_names.values():
            problems.append(f"sidecar {probe} uses port {port!r}, not one of {sorted(port_names)}")
    sc = sidecar.get("securityContext", {})
    if not (
        sc.get("runAsNonRoot")
        and sc.get("readOnlyRootFilesystem")
        and sc.get("allowPrivilegeEscalation") is False
    ):
        problems.append("sidecar must run non-root, read-only, without privilege escalation")
    if sc.get("runAsUser") != 10001:
        problems.append("sidecar runAsUser must be the image's uid 10001")

    deployments = by_kind(docs, "Deployment")
    example = [d for d in deployments if d is not patch]
    for dep in example:
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        if not _labels_match(dep["spec"]["selector"]["matchLabels"], pod_labels):
            problems.append(f"Deployment {dep['metadata']['name']}: selector does not match its pod labels")
        if not _labels_match(target_selector, dep["metadata"].get("labels", {})):
            problems.append(
                f"Deployment {dep['metadata']['name']} is not selected by the sidecar patch target"
            )
        ports = [
            p["containerPort"]
            for c in dep["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        ]
        if 8188 not in ports:
            problems.append("the example ComfyUI does not listen on 8188, where the sidecar looks")

    [service] = by_kind(docs, "Service")
    svc_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for dep in example:
        if not _labels_match(service["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]):
            problems.append("Service selector does not select the ComfyUI pods")
    for name, p in svc_ports.items():
        if p["targetPort"] not in port_names and p["targetPort"] not in port_names.values():
            problems.append(
                f"Service port {name} targets {p['targetPort']!r}, which the sidecar does not expose"
            )

    [monitor] = by_kind(docs, "ServiceMonitor")
    if not _labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"].get("labels", {})):
        problems.append("ServiceMonitor selector does not select the Service")
    for ep in monitor["spec"]["endpoints"]:
        if ep.get("port") not in svc_ports:
            problems.append(f"ServiceMonitor endpoint port {ep.get('port')!r} is not a Service port name")
    job_label = monitor["spec"].get("jobLabel")
    job = service["metadata"]["labels"].get(job_label) if job_label else service["metadata"]["name"]
    if job != RULES_JOB:
        problems.append(f"scraped as job {job!r}, but the alert rules expect job={RULES_JOB!r}")

    [rule] = by_kind(docs, "PrometheusRule")
    if not rule["metadata"].get("labels"):
        problems.append("PrometheusRule needs labels for the Prometheus ruleSelector")
    return problems


def test_selectors_ports_and_names_agree() -> None:
    assert consistency_problems(load_all()) == []


@pytest.mark.parametrize(
    "mutation", ["service_selector", "target_port", "monitor_port", "job_name", "listen"]
)
def test_consistency_check_catches_mismatches(mutation: str) -> None:
    docs = copy.deepcopy(load_all())
    [service] = by_kind(docs, "Service")
    [monitor] = by_kind(docs, "ServiceMonitor")
    patch = next(d for p, ds in docs.items() if p.name == "sidecar-patch.yaml" for d in ds)
    sidecar = patch["spec"]["template"]["spec"]["containers"][0]
    if mutation == "service_selector":
        service["spec"]["selector"] = {"app.kubernetes.io/name": "comfy-ui"}
    elif mutation == "target_port":
        service["spec"]["ports"][0]["targetPort"] = "metric"
    elif mutation == "monitor_port":
        monitor["spec"]["endpoints"][0]["port"] = "http-metrics"
    elif mutation == "job_name":
        service["metadata"]["labels"]["app.kubernetes.io/name"] = "exporter"
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "exporter"
    else:
        sidecar["args"] = [
            a if not a.startswith("--listen=") else "--listen=0.0.0.0:9100" for a in sidecar["args"]
        ]
    assert consistency_problems(docs), f"{mutation} went unnoticed"


# ------------------------------------------------------------------------------------------ PrometheusRule


def test_prometheusrule_is_generated_from_prometheus_rules() -> None:
    gen = _gen()
    committed = (COMPONENT / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == gen.render(), "stale: run python deploy/kubernetes/gen_rules.py"
    rule = yaml.safe_load(committed)
    source = []
    for f in gen.rule_files():
        source += yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]
    assert rule["spec"]["groups"] == source
    assert source, "prometheus/rules/ has no groups"


def test_gen_rules_check_flag_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen()
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(gen.render().replace("severity: critical", "severity: info", 1), encoding="utf-8")
    monkeypatch.setattr(gen, "OUTPUT", stale)
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert gen.main(["--check"]) == 1
    gen.main([])
    assert gen.main(["--check"]) == 0


def test_prometheusrule_expressions_parse() -> None:
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text(encoding="utf-8"))
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
    proc = subprocess.run(
        [tool("promtool"), "check", "rules", f.name], capture_output=True, text=True, timeout=60
    )
    Path(f.name).unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------ kustomize


def _kubectl() -> str:
    """kubectl (its built-in kustomize renders offline). Optional even under CI=true: it is not one of the
    tools the test script installs, and the cross-object checks above run without it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: the kustomize render check needs `kubectl kustomize`")
    return kubectl  # type: ignore[return-value]


def test_kustomize_renders_the_example_with_the_sidecar() -> None:
    proc = subprocess.run([_kubectl(), "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "PrometheusRule", "Service", "ServiceMonitor"], kinds
    assert {d["metadata"].get("namespace") for d in docs} == {"comfyui"}
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    containers = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"comfyui", "comfyui-exporter"}, "the sidecar patch was not applied"
    assert containers["comfyui-exporter"]["image"] == "comfyui-exporter:0.1.0"
    assert containers["comfyui"]["resources"]["limits"]["nvidia.com/gpu"] == 1, (
        "patch must not clobber ComfyUI"
    )
    # the rendered objects still fit together (namespaces, labels and names after kustomize)
    [svc] = [d for d in docs if d["kind"] == "Service"]
    [mon] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert _labels_match(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
    assert _labels_match(mon["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    exporter_ports = {p["name"] for p in containers["comfyui-exporter"]["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= exporter_ports
