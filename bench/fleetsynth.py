"""Synthetic fleets for Prometheus: many ComfyUI instances without running as many simulators.

Method: one REAL exporter's /metrics (watching simulators that ran the demo mix, so failure,
node and histogram series exist) is split into the lines of one instance (``comfyui="X"``) and the
exporter-level lines (process_*, build info, GPU collector). A synthetic exporter ``k`` serves the
exporter-level lines once and the instance lines once per instance it "watches", renamed, in the
original family order (a family stays contiguous). Counters, histogram buckets, _count and _sum
advance by one per scrape period, so rate()/increase() have real work. In the normal mode the
counters that only move when something breaks (failures, restarts, history gaps, malformed
messages, rejections, XIDs, reconnects) stay put: a healthy fleet. In ``storm`` mode they advance
too: every instance failing in every way at once, so every failure alert fires everywhere.
One HTTP server serves all synthetic exporters under /t/<k>/metrics; file_sd gives each its
own ``instance`` label.

What this measures is Prometheus: ingestion, rule evaluation and dashboard queries over the same
series count and shape as N instances would produce. It does not measure the exporter (s8_fleet's
real-process parts do that).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(.*)$")
_ADVANCING = ("_total", "_count", "_sum", "_bucket")
# Counters that only move when something goes wrong: still in "normal" mode, advancing in "storm".
_TROUBLE = re.compile(r"failure|gaps|restarts|malformed|rejections|xid|reconnects|interrupted|trips")


def split_exposition(text: str, instance: str) -> list[tuple[str, bool]]:
    """(line, per_instance) for the lines of ``instance`` and the exporter-level lines, in order;
    lines of the exporter's other instances are dropped."""
    marker = f'comfyui="{instance}"'
    out: list[tuple[str, bool]] = []
    for line in text.splitlines():
        if line.startswith("#") or marker in line:
            out.append((line, marker in line))
        elif 'comfyui="' not in line:
            out.append((line, False))
    return out


class SyntheticFleet:
    """``targets`` synthetic exporters, each watching ``per_target`` instances."""

    def __init__(
        self,
        template: list[tuple[str, bool]],
        instance: str,
        targets: int,
        per_target: int,
        period_s: float,
        storm: bool = False,
    ) -> None:
        self.targets = targets
        self.per_target = per_target
        self.period_s = period_s
        self._parts: list[list[tuple[str, float, str, bool]]] = []
        marker = f'comfyui="{instance}"'
        for k in range(targets):
            parts = []
            names = [f"fleet-{k:03d}-{i:02d}" for i in range(per_target)]
            for line, per_instance in template:
                copies = [line.replace(marker, f'comfyui="{n}"') for n in names] if per_instance else [line]
                for copy in copies:
                    m = _SAMPLE.match(copy)
                    if copy.startswith("#") or not m:
                        parts.append((copy, 0.0, "", False))
                        continue
                    head = m.group(1) + (m.group(2) or "")
                    name = m.group(1)
                    advancing = name.endswith(_ADVANCING) and (storm or not _TROUBLE.search(name))
                    parts.append((head, float(m.group(3)), m.group(4), advancing))
            self._parts.append(parts)
        self._server: ThreadingHTTPServer | None = None

    @property
    def instances(self) -> int:
        return self.targets * self.per_target

    def render(self, k: int) -> bytes:
        tick = int(time.time() / self.period_s)
        lines = []
        for head, value, tail, advancing in self._parts[k]:
            if head.startswith("#"):
                lines.append(head)
            else:
                lines.append(f"{head} {value + tick if advancing else value}{tail}")
        return ("\n".join(lines) + "\n").encode()

    def start(self) -> SyntheticFleet:
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "t" or not parts[1].isdigit():
                    self.send_error(404)
                    return
                body = fleet.render(int(parts[1]))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="synthetic-fleet", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def file_sd(self) -> list[dict[str, Any]]:
        assert self._server is not None
        address = f"127.0.0.1:{self._server.server_address[1]}"
        return [
            {
                "targets": [address],
                "labels": {"instance": f"fleet-host-{k:03d}:9188", "__metrics_path__": f"/t/{k}/metrics"},
            }
            for k in range(self.targets)
        ]


def write_prometheus_config(
    directory: Path, rules_dir: Path, sd: list[dict[str, Any]], interval: str
) -> Path:
    """Prometheus config for fleet runs: the shipped rule files, exporters from file_sd, itself."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "targets.json").write_text(json.dumps(sd))
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "comfyui-exporter",
                "file_sd_configs": [{"files": [str(directory / "targets.json")], "refresh_interval": "5s"}],
            },
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
