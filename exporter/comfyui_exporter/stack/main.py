"""``./scripts/run --stack [--demo]``: the whole alerting pipeline on one host, one command.

Exit codes: 0 after Ctrl-C / SIGTERM, 1 when a process dies or a binary is missing, 2 for a bad
setting or a busy port.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..config.args import build_parser as exporter_parser
from . import binaries, render, supervise
from .notify_log import NotificationLog
from .settings import Options, SettingsError, parse

PY = sys.executable


def exporter_flags() -> set[str]:
    """The exporter's option strings: newer flags are passed only when this exporter has them."""
    return {opt for action in exporter_parser()._actions for opt in action.option_strings}


def build_children(
    opts: Options, layout: render.Layout, configs: dict[str, Path], bins: dict[str, str]
) -> list:
    state, a = layout.state, opts.args
    logs = state / "logs"
    children = []
    exporter = [PY, "-m", "comfyui_exporter", "--listen", f"127.0.0.1:{layout.ports['exporter']}"]
    if a.demo:
        sim = f"127.0.0.1:{layout.ports['demo']}"
        children.append(
            supervise.Child(
                "simulator",
                [PY, "-m", "comfyui_exporter.sim", "--listen", sim, "--scenario", "demo"],
                f"http://{sim}/system_stats",
                logs / "simulator.log",
            )
        )
        exporter += ["--comfyui-url", f"comfyui=http://{sim}", "--no-gpu"]
    elif not any(arg.startswith("--comfyui-url") for arg in opts.exporter_args):
        exporter += ["--comfyui-url", opts.settings.get("COMFYUI_URL", "http://127.0.0.1:8188")]
    if a.profile == "fast" and not any(arg.startswith("--poll-interval") for arg in opts.exporter_args):
        exporter += ["--poll-interval", "1"]
    flags = exporter_flags()
    if "--alertmanager.url" in flags:
        exporter += ["--alertmanager.url", layout.url("alertmanager")]
    if "--web.external-url" in flags:
        exporter += ["--web.external-url", layout.url("exporter")]
    if "--alertmanager.label" in flags:  # event alerts reach the same chats as the rule alerts
        exporter += ["--alertmanager.label", f"chat={render.chat_label(opts.settings)}"]
    exporter += opts.exporter_args
    am_url, prom_url = layout.url("alertmanager"), layout.url("prometheus")
    children += [
        supervise.Child(
            "relay",
            [PY, "-m", "comfyui_exporter.relay", "--config", str(configs["relay"])],
            f"{layout.url('relay')}/-/ready",
            logs / "relay.log",
        ),
        supervise.Child(
            "alertmanager",
            [
                bins["alertmanager"],
                f"--config.file={configs['alertmanager']}",
                f"--storage.path={state / 'alertmanager' / 'data'}",
                f"--web.listen-address=127.0.0.1:{layout.ports['alertmanager']}",
                f"--web.external-url={am_url}",
                "--cluster.listen-address=",  # single instance: no gossip port on 0.0.0.0:9094
            ],
            f"{am_url}/-/ready",
            logs / "alertmanager.log",
        ),
        supervise.Child("exporter", exporter, f"{layout.url('exporter')}/-/ready", logs / "exporter.log"),
        supervise.Child(
            "prometheus",
            [
                bins["prometheus"],
                f"--config.file={configs['prometheus']}",
                f"--storage.tsdb.path={state / 'prometheus' / 'data'}",
                "--storage.tsdb.retention.time=15d",
                f"--web.listen-address=127.0.0.1:{layout.ports['prometheus']}",
                f"--web.external-url={prom_url}",
                "--web.enable-lifecycle",
            ],
            f"{prom_url}/-/ready",
            logs / "prometheus.log",
        ),
    ]
    return children


def _alerts_page(prometheus: str) -> str:
    """``/alerts`` upstream; Debian's build has only the classic UI (``/classic/alerts``)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{prometheus}/alerts", timeout=2):
            return "/alerts"
    except (OSError, urllib.error.URLError):
        return "/classic/alerts"


def _summary(opts: Options, layout: render.Layout, seconds: float) -> str:
    s, robots = opts.settings, opts.settings.robots()
    chat = "Slack" if "SLACK_WEBHOOK_URL" in s.secrets else "the local log"
    lines = [
        f"comfyui-exporter stack up in {seconds:.1f} s ({opts.args.profile} profile)",
        f"  state folder  {layout.state}",
        f"  exporter      {layout.url('exporter')}/metrics   failures: {layout.url('exporter')}/failures",
        f"  prometheus    {layout.url('prometheus')}{_alerts_page(layout.url('prometheus'))}",
        f"  alertmanager  {layout.url('alertmanager')}/api/v2/alerts",
        f"  relay         {layout.url('relay')}/metrics",
    ]
    if opts.args.demo:
        lines.append(f"  simulator     {layout.url('demo')} (demo ComfyUI)")
    lines += [
        f"  notifications: {chat}"
        + (f", robots: {', '.join(robots)}" if robots else "")
        + (", e-mail" if s.smtp() else ""),
        f"  tail -f {layout.state / 'notifications.log'}",
        f"  journal: {layout.state / 'relay' / 'journal.jsonl'}; process logs: {layout.state / 'logs'}",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    if not (render.PROMETHEUS_SOURCE.is_file() and render.ALERTMANAGER_SOURCE.is_file()):
        print(
            "stack: the repository's prometheus/ and alertmanager/ folders are not here; "
            "run ./scripts/run --stack from a checkout",
            file=sys.stderr,
        )
        return 2
    try:
        opts = parse(sys.argv[1:] if argv is None else argv)
        bins = {
            "prometheus": binaries.find("prometheus", opts.args.prometheus_bin),
            "alertmanager": binaries.find("alertmanager", opts.args.alertmanager_bin),
        }
    except SettingsError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2
    except binaries.MissingBinary as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    ports = {name: opts.port(name) for name in ("exporter", "prometheus", "alertmanager", "relay", "notify")}
    if opts.args.demo:
        ports["demo"] = opts.args.demo_port or supervise.free_port()
    try:
        supervise.check_ports(ports)
        layout = render.Layout(opts.args.state_dir.resolve(), ports)
        layout.state.mkdir(parents=True, exist_ok=True)
        configs = render.write_all(layout, opts.settings, opts.args.profile)
    except (supervise.PortBusy, render.RenderError, SettingsError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2
    if opts.args.check:
        print("configs written: " + ", ".join(str(p) for p in configs.values()))
        return 0
    children = build_children(opts, layout, configs, bins)

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    notify = None
    try:
        for child in children:
            child.start()
        notify = NotificationLog(layout.state / "notifications.log", ports["notify"]).start()
        supervise.wait_ready(children, timeout=60)
        print(_summary(opts, layout, time.monotonic() - started), flush=True)
        return supervise.run_until_stopped(children)
    except KeyboardInterrupt:
        supervise.stop_all(children)
        return 0
    except RuntimeError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        supervise.stop_all(children)
        return 1
    finally:
        if notify is not None:
            notify.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
