"""Flags, their environment variables, and errors that name the offending flag."""

from __future__ import annotations

import pytest

from comfyui_exporter.cli.main import main
from comfyui_exporter.config.args import parse_config
from comfyui_exporter.config.settings import ConfigError, parse_instance


def test_defaults_watch_local_comfyui() -> None:
    config, _ = parse_config([], environ={})
    assert [(i.name, i.url) for i in config.instances] == [("127.0.0.1:8188", "http://127.0.0.1:8188")]
    assert (config.listen_host, config.listen_port, config.poll_interval) == ("0.0.0.0", 9188, 5.0)


def test_named_instances_gpu_override_and_ws_url() -> None:
    config, _ = parse_config(
        ["--comfyui-url", "gpu0=https://box:8443/comfy@GPU-1234", "--comfyui-url", "http://10.0.0.5:8188"],
        environ={},
    )
    first, second = config.instances
    assert (first.name, first.url, first.gpu_uuid) == ("gpu0", "https://box:8443/comfy", "GPU-1234")
    assert first.ws_url == "wss://box:8443/comfy/ws"
    assert (second.name, second.ws_url) == ("10.0.0.5:8188", "ws://10.0.0.5:8188/ws")


def test_environment_variables_and_flags_win() -> None:
    env = {
        "COMFYUI_EXPORTER_COMFYUI_URL": "a=http://h1:1, b=http://h2:2",
        "COMFYUI_EXPORTER_POLL_INTERVAL": "2.5",
        "COMFYUI_EXPORTER_NO_GPU": "true",
        "COMFYUI_EXPORTER_COMFYUI_HEADER": "X-A: 1\nX-B: two, three",
    }
    config, _ = parse_config([], environ=env)
    assert [i.name for i in config.instances] == ["a", "b"]
    assert config.poll_interval == 2.5 and not config.gpu_enabled
    assert config.instances[0].headers == {"X-A": "1", "X-B": "two, three"}
    config, _ = parse_config(["--poll-interval", "7"], environ=env)
    assert config.poll_interval == 7.0


def test_header_file_reads_secret_and_repr_hides_it(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("Bearer s3cr3t\n")
    config, _ = parse_config(["--comfyui-header-file", f"Authorization:{secret}"], environ={})
    instance = config.instances[0]
    assert instance.headers["Authorization"] == "Bearer s3cr3t"
    assert "s3cr3t" not in repr(instance) and "s3cr3t" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--comfyui-url", "ftp://x"], "--comfyui-url"),
        (["--comfyui-url", "a=http://x:1", "--comfyui-url", "a=http://y:2"], "--comfyui-url"),
        (["--listen", "nope"], "--listen"),
        (["--poll-interval", "0"], "--poll-interval"),
        (["--history-max-items", "0"], "--history-max-items"),
        (["--comfyui-header", "no colon"], "--comfyui-header"),
        (["--comfyui-header-file", "X:/does/not/exist"], "--comfyui-header-file"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        parse_config(argv, environ={})


def test_main_exits_2_with_the_flag_named(capsys) -> None:
    assert main(["--listen", "bad"]) == 2
    assert "--listen" in capsys.readouterr().err


def test_instance_name_defaults_to_host_port() -> None:
    assert parse_instance("https://example.org") == ("example.org:443", "https://example.org", None)
