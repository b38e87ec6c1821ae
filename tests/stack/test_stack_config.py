"""The stack's start-up checks and rendered configs: busy ports, missing binaries, settings, and
configs that real promtool / amtool / the relay accept, with no address off this host unless the
user configured it."""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path

import pytest
import yaml

from comfyui_exporter.stack import binaries, render
from comfyui_exporter.stack.main import build_children, main
from comfyui_exporter.stack.settings import SettingsError, load_settings, parse
from tests.support.binaries import free_port, run_tool

PORT_NAMES = ("exporter", "prometheus", "alertmanager", "relay", "notify")


def _ports_argv(state: Path) -> list[str]:
    argv = ["--state-dir", str(state)]
    for name in PORT_NAMES:
        argv += [f"--{name}-port", str(free_port())]
    return argv


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("COMFYUI_STACK_"):
            monkeypatch.delenv(key)


def test_busy_port_is_refused_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        argv = [*_ports_argv(tmp_path), "--prometheus-port", str(busy), "--check"]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"port {busy} (prometheus)" in err and "--prometheus-port" in err


def test_missing_binary_prints_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    monkeypatch.delenv("PROMETHEUS_BIN", raising=False)
    monkeypatch.delenv("ALERTMANAGER_BIN", raising=False)
    assert main([*_ports_argv(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert binaries.INSTALL_COMMAND in err and "prometheus" in err
    with pytest.raises(binaries.MissingBinary, match="not an executable"):
        binaries.find("alertmanager", str(tmp_path / "nope"))


def _render(
    tmp_path: Path, env: dict[str, str], profile: str = "fast"
) -> tuple[render.Layout, dict[str, Path]]:
    settings = load_settings(None, env)
    layout = render.Layout(tmp_path / "state", {name: free_port() for name in PORT_NAMES})
    return layout, render.write_all(layout, settings, profile)


def _check_with_real_tools(configs: dict[str, Path]) -> None:
    prom = run_tool("promtool", "check", "config", str(configs["prometheus"]))
    assert prom.returncode == 0, prom.stdout + prom.stderr
    am = run_tool("amtool", "check-config", str(configs["alertmanager"]))
    assert am.returncode == 0, am.stdout + am.stderr
    import subprocess
    import sys

    relay = subprocess.run(
        [sys.executable, "-m", "comfyui_exporter.relay", "--config", str(configs["relay"]), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert relay.returncode == 0, relay.stdout + relay.stderr


def test_nothing_configured_renders_loopback_only_configs_the_tools_accept(tmp_path: Path) -> None:
    layout, configs = _render(tmp_path, {})
    texts = {name: path.read_text() for name, path in configs.items()}
    for name, text in texts.items():
        assert render.foreign_hosts(yaml.safe_load(text), set()) == [], name
        assert "example.com:" not in text and "smtp.example.com" not in text, name
        assert "/etc/alertmanager" not in text and "comfyui-alert-relay:" not in text, name
    am = yaml.safe_load(texts["alertmanager"])
    assert not any("email_configs" in r for r in am["receivers"])  # no SMTP configured: no e-mail
    assert not [k for k in am.get("global", {}) if k.startswith("smtp_")]
    slack_file = Path(am["receivers"][0]["slack_configs"][0]["api_url_file"])
    assert slack_file.read_text().strip() == f"{layout.url('notify')}/slack"  # the local log
    prom = yaml.safe_load(texts["prometheus"])
    assert prom["global"]["external_labels"]["chat"] == "slack"
    assert prom["global"]["scrape_timeout"] == prom["global"]["scrape_interval"] == "1s"
    exporter_job = prom["scrape_configs"][0]["static_configs"][0]
    assert exporter_job["labels"]["exporter_url"] == layout.url("exporter")
    relay = yaml.safe_load(texts["relay"])
    assert list(relay["targets"]) == ["local-log"]
    assert relay["exporter_failures_url"] == f"{layout.url('exporter')}/failures"
    _check_with_real_tools(configs)


def test_configured_robots_slack_and_smtp_keep_secrets_out_of_the_configs(tmp_path: Path) -> None:
    secret_file = tmp_path / "feishu-secret"
    secret_file.write_text("feishu-test-placeholder\n")
    env = {
        "COMFYUI_STACK_DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=test-placeholder",
        "COMFYUI_STACK_DINGTALK_SECRET": "SEC-test-placeholder-value",
        "COMFYUI_STACK_FEISHU_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/test-placeholder",
        "COMFYUI_STACK_FEISHU_SECRET_FILE": str(secret_file),
        "COMFYUI_STACK_SLACK_WEBHOOK_URL": "https://slack-webhook.invalid/services/test/B0/test-placeholder",
        "COMFYUI_STACK_SMTP_SMARTHOST": "mail.internal.test:587",
        "COMFYUI_STACK_SMTP_FROM": "alerts@internal.test",
        "COMFYUI_STACK_SMTP_TO": "oncall@internal.test",
        "COMFYUI_STACK_SMTP_USERNAME": "alerts",
        "COMFYUI_STACK_SMTP_PASSWORD": "smtp-test-placeholder",
    }
    layout, configs = _render(tmp_path, env, profile="default")
    texts = {name: path.read_text() for name, path in configs.items()}
    for value in (
        "access_token=test-placeholder",
        "SEC-test-placeholder",
        "smtp-test-placeholder",
        "B0/test",
    ):
        assert not any(value in text for text in texts.values()), value
    for path in (layout.secrets).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    relay = yaml.safe_load(texts["relay"])
    assert sorted(relay["targets"]) == ["dingtalk", "feishu"]
    assert relay["targets"]["feishu"]["secret_file"] == str(secret_file.resolve())  # the user's file
    assert (
        Path(relay["targets"]["dingtalk"]["secret_file"]).read_text().strip() == "SEC-test-placeholder-value"
    )
    prom = yaml.safe_load(texts["prometheus"])
    assert prom["global"]["external_labels"]["chat"] == "slack,dingtalk,feishu"
    assert prom["global"]["scrape_interval"] == "15s"  # default profile: the shipped values
    am = yaml.safe_load(texts["alertmanager"])
    (email,) = next(r for r in am["receivers"] if r["name"] == "email-oncall")["email_configs"]
    assert email["smarthost"] == "mail.internal.test:587" and email["to"] == "oncall@internal.test"
    assert Path(email["auth_password_file"]).read_text().strip() == "smtp-test-placeholder"
    assert am["route"]["group_wait"] == "30s"
    _check_with_real_tools(configs)


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="COMFYUI_STACK_DINGTALK_URLL"):
        load_settings(None, {"COMFYUI_STACK_DINGTALK_URLL": "x"})
    with pytest.raises(SettingsError, match="DINGTALK_SECRET is set but DINGTALK_URL"):
        load_settings(None, {"COMFYUI_STACK_DINGTALK_SECRET": "x"})
    with pytest.raises(SettingsError, match="SMTP_FROM"):
        load_settings(None, {"COMFYUI_STACK_SMTP_SMARTHOST": "mail.internal.test:25"})
    file = tmp_path / "stack.env"
    file.write_text("DINGTALK_URL=https://oapi.dingtalk.com/robot/send?access_token=x\n")
    with pytest.raises(SettingsError, match="never written in a settings file; use DINGTALK_URL_FILE"):
        load_settings(file, {})
    url_file = tmp_path / "url"
    url_file.write_text("https://oapi.dingtalk.com/robot/send?access_token=x\n")
    file.write_text(f"# robots\nCOMFYUI_STACK_DINGTALK_URL_FILE={url_file}\nSMTP_REQUIRE_TLS=false\n")
    settings = load_settings(file, {})
    assert settings.robots() == ["dingtalk"] and settings.get("SMTP_REQUIRE_TLS") == "false"


def test_unmappable_address_in_a_shipped_file_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "prometheus.yml"
    source.write_text(
        yaml.safe_dump(
            {"scrape_configs": [{"job_name": "x", "static_configs": [{"targets": ["gpu-box:9100"]}]}]}
        )
    )
    layout = render.Layout(tmp_path, dict.fromkeys(PORT_NAMES, 1))
    with pytest.raises(render.RenderError, match="scrape_configs x: cannot map 'gpu-box:9100'"):
        render.prometheus_config(layout, load_settings(None, {}), "fast", source=source)
    assert render.foreign_hosts({"url": "http://smtp.example.com:587/x"}, set()) == [
        "http://smtp.example.com:587/x"
    ]
    assert render.foreign_hosts({"smarthost": "smtp.example.com:587"}, {"smtp.example.com"}) == []


def test_demo_flag_in_any_position_and_the_simulator_on_its_own_port(tmp_path: Path) -> None:
    for argv in (["--demo", "--profile", "fast"], ["--profile", "fast", "--demo"], ["--stack", "--demo"]):
        assert parse(argv, {}).args.demo, argv
    opts = parse(["--demo", "--demo-port", "18555", "--log-level", "debug"], {})
    assert opts.exporter_args == ["--log-level", "debug"]  # unknown flags go to the exporter
    layout = render.Layout(tmp_path, {**{n: free_port() for n in PORT_NAMES}, "demo": 18555})
    bins = {"prometheus": "/usr/bin/prometheus", "alertmanager": "/usr/bin/prometheus-alertmanager"}
    children = {
        c.name: c
        for c in build_children(
            opts, layout, {n: tmp_path for n in ("relay", "alertmanager", "prometheus")}, bins
        )
    }
    assert "127.0.0.1:18555" in children["simulator"].argv
    exporter = children["exporter"].argv
    assert exporter[exporter.index("--comfyui-url") + 1] == "comfyui=http://127.0.0.1:18555"
    assert "--cluster.listen-address=" in children["alertmanager"].argv


def test_event_path_flags_are_passed_only_when_the_exporter_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comfyui_exporter.stack import main as stack_main

    opts = parse([], {})
    layout = render.Layout(tmp_path, {n: free_port() for n in PORT_NAMES})
    configs = {n: tmp_path for n in ("relay", "alertmanager", "prometheus")}
    bins = {"prometheus": "p", "alertmanager": "a"}

    def exporter_argv() -> list[str]:
        return next(c.argv for c in build_children(opts, layout, configs, bins) if c.name == "exporter")

    real = stack_main.exporter_flags()
    assert "--listen" in real  # detection reads the real parser
    new = {"--alertmanager.url", "--web.external-url"}
    monkeypatch.setattr(stack_main, "exporter_flags", lambda: real - new)
    assert "--alertmanager.url" not in exporter_argv()
    monkeypatch.setattr(stack_main, "exporter_flags", lambda: real | new)
    argv = exporter_argv()
    assert argv[argv.index("--alertmanager.url") + 1] == layout.url("alertmanager")
    assert argv[argv.index("--web.external-url") + 1] == layout.url("exporter")


def test_a_configured_robot_gets_a_target_even_without_an_example_of_its_kind(tmp_path: Path) -> None:
    source = tmp_path / "relay.yml"
    source.write_text(
        yaml.safe_dump(
            {
                "listen": "0.0.0.0:9189",
                "auth_token_file": "/run/secrets/relay_token",
                "journal": {"path": "/var/lib/x/journal.jsonl"},
                "targets": {
                    "dingtalk": {
                        "type": "dingtalk",
                        "url_file": "/run/secrets/dingtalk_url",
                        "language": "en",
                    }
                },
            }
        )
    )
    env = {
        "COMFYUI_STACK_WECOM_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=test-placeholder",
        "COMFYUI_STACK_DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=test-placeholder",
    }
    layout = render.Layout(tmp_path / "state", {n: free_port() for n in PORT_NAMES})
    config = render.relay_config(layout, load_settings(None, env), source=source)
    assert sorted(config["targets"]) == ["dingtalk", "wecom"]
    assert config["targets"]["wecom"]["type"] == "wecom"
    assert config["targets"]["dingtalk"]["language"] == "en"  # the example's settings are kept
    assert "/run/secrets" not in yaml.safe_dump(config)


def test_the_example_settings_file_names_only_known_keys_and_no_secret_values(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "stack.env.example"
    lines = [line.lstrip("# ").strip() for line in example.read_text(encoding="utf-8").splitlines()]
    settings = [line for line in lines if re.fullmatch(r"[A-Z_]+=.*", line)]
    assert len(settings) >= 15
    uncommented = tmp_path / "stack.env"
    # every secret is a *_FILE; point them at a real file so that the whole example loads
    secret = tmp_path / "secret"
    secret.write_text("https://example.invalid/placeholder\n")
    uncommented.write_text(
        "\n".join(re.sub(r"_FILE=.*", f"_FILE={secret}", line) for line in settings) + "\n", encoding="utf-8"
    )
    loaded = load_settings(uncommented, {})
    assert loaded.robots() == ["dingtalk", "wecom", "feishu"] and loaded.smtp()


def test_the_environment_overrides_the_settings_file_in_either_form(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("https://oapi.dingtalk.com/robot/send?access_token=from-file\n")
    file = tmp_path / "stack.env"
    file.write_text(f"DINGTALK_URL_FILE={url_file}\nCOMFYUI_URL=http://127.0.0.1:8188\n")
    env = {"COMFYUI_STACK_DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=env"}
    settings = load_settings(file, env)
    assert settings.secrets["DINGTALK_URL"].value == env["COMFYUI_STACK_DINGTALK_URL"]
    assert settings.get("COMFYUI_URL") == "http://127.0.0.1:8188"
