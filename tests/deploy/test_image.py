"""Dockerfile, .dockerignore and constraints.txt (the image cannot be built here: no Docker engine)."""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import re
import tomllib

import pytest
from deploy_helpers import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_base_is_slim_python_and_multi_stage() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = [a for i, a in instructions(text) if i == "FROM"]
    assert len(froms) >= 2, "build in one stage, copy the venv into a clean one"
    for f in froms:
        image = f.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11[\w.]*-slim[\w.-]*", image), image


def test_runtime_stage_is_non_root_with_a_healthcheck() -> None:
    final = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    users = [a for i, a in final if i == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (so runAsNonRoot can check it)"
    hc = [a for i, a in final if i == "HEALTHCHECK"]
    assert len(hc) == 1 and "CMD" in hc[0]
    env = " ".join(a for i, a in final if i == "ENV")
    assert "/-/healthy" in hc[0] + env
    assert any(i == "EXPOSE" and "9188" in a for i, a in final)
    cmd = [a for i, a in final if i == "CMD"]
    assert cmd and "comfyui-exporter" in cmd[-1] and "0.0.0.0:9188" in cmd[-1]


def test_dependencies_are_installed_with_the_constraints() -> None:
    build = stages(DOCKERFILE.read_text(encoding="utf-8"))[0]
    runs = " ".join(a for i, a in build if i == "RUN")
    assert re.search(r"pip install (--constraint|-c) constraints\.txt", runs)
    copies = [a.split() for i, a in build if i == "COPY"]
    assert any("constraints.txt" in c for c in copies)


# ------------------------------------------------------------------------------------------ .dockerignore


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes; a directory pattern covers its
    contents. Enough of the syntax for our file."""
    result = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        regex = fnmatch.translate(p).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        regex = regex.replace(r"\*\*", ".*")
        parts = path.split("/")
        hit = any(re.match(regex, "/".join(parts[: n + 1])) for n in range(len(parts)))
        if p.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(seg, p[3:]) for seg in parts)
        if hit:
            result = not neg
    return result


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    build = stages(DOCKERFILE.read_text(encoding="utf-8"))[0]
    for i, args in build:
        if i == "COPY" and "--from" not in args:
            for src in args.split()[:-1]:
                assert (REPO / src).exists(), f"COPY {src}: not in the repo"
                assert not _ignored(src, patterns), f"COPY {src} is excluded by .dockerignore"
    assert not _ignored("exporter/comfyui_exporter/cli/main.py", patterns)
    for path in (
        "tests/deploy/node_modules/x",
        ".git/config",
        "grafana/dashboards/x.json",
        "deploy/compose/secrets/relay_token",
        "exporter/comfyui_exporter/__pycache__/x.pyc",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"


# ------------------------------------------------------------------------------------------ constraints


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{line}: pin with =="
        pins[canonicalize_name(req.name)] = Version(spec[0].version)
    return pins


def _image_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("sim", "relay"):  # what the Dockerfile installs
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if canonicalize_name(r.name) != "comfyui-exporter"]


def test_constraints_pin_every_image_dependency_within_pyproject() -> None:
    pins = _pins()
    for req in _image_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} (pyproject.toml) is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"pin {name}=={pins[name]} violates {req}"
        )


def test_constraints_cover_the_transitive_dependencies() -> None:
    """Every dependency of a pinned package is pinned too (checked from the installed metadata)."""
    pins = _pins()
    checked = 0
    for name, version in pins.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        checked += 1
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            assert canonicalize_name(req.name) in pins, f"{name} needs {req.name}, which is not pinned"
    if checked == 0:
        pytest.skip("none of the pinned versions is installed here; cannot read their metadata")


# ------------------------------------------------------------------------------------------ demo sink


def test_demo_sink_records_notifications() -> None:
    import importlib.util
    import json
    import threading
    import urllib.request
    from http.server import ThreadingHTTPServer

    spec = importlib.util.spec_from_file_location("demo_sink", REPO / "deploy" / "compose" / "demo_sink.py")
    assert spec and spec.loader
    sink_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sink_mod)
    server = ThreadingHTTPServer(("127.0.0.1", 0), sink_mod.make_handler(sink_mod.Sink()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        slack = {"channel": "#comfyui-alerts", "attachments": [{"title": "[FIRING:1] ComfyUIOutOfMemory"}]}
        req = urllib.request.Request(
            base + "/slack",
            data=json.dumps(slack).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["errcode"] == 0  # robots' success shape
        with urllib.request.urlopen(base + "/api/notifications", timeout=5) as resp:
            items = json.loads(resp.read())
        assert items[0]["path"] == "/slack" and "ComfyUIOutOfMemory" in items[0]["summary"]
        with urllib.request.urlopen(base + "/", timeout=5) as resp:
            assert "ComfyUIOutOfMemory" in resp.read().decode()
        with urllib.request.urlopen(base + "/-/healthy", timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.shutdown()
        server.server_close()
