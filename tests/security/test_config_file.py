"""``--config comfyui-exporter.yml``: validation with line and key, precedence, per-instance settings."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from comfyui_exporter.config import args as cli
from comfyui_exporter.config import file as config_file
from comfyui_exporter.config.file import load_config_file
from comfyui_exporter.config.settings import ConfigError, TLSOptions, build_instances, parse_listen

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "comfyui-exporter.example.yml"


def example_dir(tmp_path: Path) -> Path:
    """The example plus the files it names, as an operator would have them next to it."""
    shutil.copy(EXAMPLE, tmp_path / "comfyui-exporter.yml")
    (tmp_path / "web.yml").write_text("{}\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "render-farm-token").write_text("Bearer abc123\n")
    (tmp_path / "secrets" / "internal-ca.pem").write_text("not checked here\n")
    return tmp_path / "comfyui-exporter.yml"


def parse(argv: list[str], environ: dict[str, str] | None = None) -> tuple[argparse.Namespace, tuple]:
    """Exactly the integration described for config.args.parse_config (see the report / docs)."""
    parser = cli.build_parser()
    environ = environ or {}
    loaded = config_file.prepare(parser, argv, environ)
    args = parser.parse_args([*cli._apply_env(parser, argv, environ), *argv])
    tls = TLSOptions(
        args.comfyui_ca_file,
        args.comfyui_client_cert,
        args.comfyui_client_key,
        args.comfyui_insecure_skip_verify,
    )
    instances = config_file.instances_for(loaded, args, tls) or build_instances(
        args.comfyui_url, args.comfyui_header, args.comfyui_header_file, tls
    )
    return args, instances


def test_example_file_loads(tmp_path: Path) -> None:
    loaded = load_config_file(example_dir(tmp_path))
    d = loaded.defaults
    assert d["listen"] == "127.0.0.1:9188" and d["poll_interval"] == 5.0 and d["no_gpu"] is False
    assert d["gpu_expected_count"] == 2 and d["log_format"] == "json"
    assert d["web_config_file"] == str(tmp_path / "web.yml")
    assert d["web_failures_require_auth"] is True
    assert d["comfyui_header"] == ["X-Monitoring: comfyui-exporter"]
    assert [i.name for i in loaded.instances] == ["gpu0", "gpu1", "render-farm"]
    farm = loaded.instances[2]
    assert farm.headers == {"X-Tenant": "render", "Authorization": "Bearer abc123"}
    assert farm.tls == {"ca_file": str(tmp_path / "secrets" / "internal-ca.pem")}
    assert loaded.instances[0].gpu_uuid == "GPU-5c7c3b52-8a0b-4f6e-9d1a-2b1f0e7c9a11"
    assert "abc123" not in repr(loaded)


def test_file_values_become_defaults_and_flags_win(tmp_path: Path) -> None:
    path = example_dir(tmp_path)
    args, instances = parse(["--config", str(path)])
    assert args.listen == "127.0.0.1:9188" and args.log_format == "json" and args.gpu_expected_count == 2
    assert [i.name for i in instances] == ["gpu0", "gpu1", "render-farm"]
    assert instances[0].gpu_uuid.startswith("GPU-5c7c")
    assert instances[0].headers == {"X-Monitoring": "comfyui-exporter"}
    assert instances[2].headers["Authorization"] == "Bearer abc123"
    assert instances[2].tls.ca_file.endswith("internal-ca.pem") and instances[0].tls.ca_file is None
    # flag > environment > file
    args, _ = parse(
        [f"--config={path}", "--poll-interval", "2", "--comfyui-header", "X-Monitoring: cli"],
        {"COMFYUI_EXPORTER_POLL_INTERVAL": "3", "COMFYUI_EXPORTER_LOG_FORMAT": "text"},
    )
    assert args.poll_interval == 2.0 and args.log_format == "text"
    _, instances = parse([f"--config={path}", "--comfyui-header", "X-Monitoring: cli"])
    assert instances[1].headers == {"X-Monitoring": "cli"}  # a flag overrides the file's default header
    # --comfyui-url replaces the file's instances
    _, instances = parse(["--config", str(path), "--comfyui-url", "solo=http://127.0.0.1:9999"])
    assert [(i.name, i.url) for i in instances] == [("solo", "http://127.0.0.1:9999")]
    assert instances[0].headers == {"X-Monitoring": "comfyui-exporter"}  # file defaults still apply
    _, instances = parse(["--config", str(path)], {"COMFYUI_EXPORTER_COMFYUI_URL": "http://127.0.0.1:7777"})
    assert [i.name for i in instances] == ["127.0.0.1:7777"]


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = example_dir(tmp_path)
    args, instances = parse([], {"COMFYUI_EXPORTER_CONFIG": str(path)})
    assert len(instances) == 3 and args.log_format == "json"


def test_no_file_no_change() -> None:
    args, instances = parse([])
    assert args.listen == "0.0.0.0:9188" and [i.url for i in instances] == ["http://127.0.0.1:8188"]


def test_instance_tls_overrides_common_field_by_field(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "other-ca.pem").write_text("x")
    (tmp_path / "c.yml").write_text(
        "defaults:\n  tls:\n    ca_file: ca.pem\n    insecure_skip_verify: true\n"
        "instances:\n  - url: https://a.example:8443\n  - url: https://b.example\n    tls:\n"
        "      ca_file: other-ca.pem\n      insecure_skip_verify: false\n"
    )
    _, instances = parse(["--config", str(tmp_path / "c.yml")])
    a, b = instances
    assert (
        a.name == "a.example:8443"
        and a.tls.ca_file == str(tmp_path / "ca.pem")
        and a.tls.insecure_skip_verify
    )
    assert b.name == "b.example:443" and b.tls.ca_file == str(tmp_path / "other-ca.pem")
    assert not b.tls.insecure_skip_verify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "listen: 127.0.0.1:9188\npoll_intervall: 5\n",
            "c.yml:2: poll_intervall: unknown key (did you mean poll_interval?)",
        ),
        ("poll_interval: 0\n", "c.yml:1: poll_interval: must be positive, got 0"),
        ("poll_interval: fast\n", "c.yml:1: poll_interval: expected a number, got 'fast'"),
        ("debounce: -1\n", "c.yml:1: debounce: must not be negative"),
        ("history_max_items: 0\n", "c.yml:1: history_max_items: must be at least 1"),
        ("listen: localhost\n", "c.yml:1: listen: expected HOST:PORT, got 'localhost'"),
        (
            "log:\n  level: loud\n",
            "c.yml:2: log.level: expected one of debug, info, warning, error, got 'loud'",
        ),
        ("gpu:\n  enabled: maybe\n", "c.yml:2: gpu.enabled: expected true or false"),
        ("web:\n  config_file: missing.yml\n", "c.yml:2: web.config_file: cannot read"),
        ("instances:\n  - name: a\n", "c.yml:2: instances[0]: url is required"),
        ("instances:\n  - url: ftp://x\n", "c.yml:2: instances[0].url: 'ftp://x' is not an http(s) URL"),
        ("instances:\n  - url: http://x:1@GPU-1\n", "c.yml:2: instances[0].url: give the GPU as gpu:"),
        ("instances:\n  - url: http://x:1\n    gpu: 0\n", "c.yml:3: instances[0].gpu: expected an NVML uuid"),
        (
            "instances:\n  - url: http://x:1\n  - url: http://x:1\n",
            "c.yml:3: instances[1].url: instance name 'x:1' is also used at line 2",
        ),
        (
            "instances:\n  - url: http://x:1\n    headers:\n      Bad Name: v\n",
            "c.yml:4: instances[0].headers.Bad Name: not a valid header name",
        ),
        (
            "instances:\n  - url: http://x:1\n    header_files:\n      Authorization: nope\n",
            "c.yml:4: instances[0].header_files.Authorization: cannot read",
        ),
        (
            "instances:\n  - url: http://x:1\n    tlss: {}\n",
            "c.yml:3: instances[0].tlss: unknown key (did you mean tls?)",
        ),
        ("instances:\n  url: http://x:1\n", "c.yml:1: instances: expected a list, got a mapping"),
        ("defaults:\n  headers: [a]\n", "c.yml:2: defaults.headers: expected a mapping"),
        ("listen: [\n", "c.yml:2: not valid YAML"),
    ],
)
def test_errors_name_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "c.yml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config_file(tmp_path / "c.yml")
    assert expected in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "c.yml"))


def test_two_line_header_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("line1\nline2\n")
    (tmp_path / "c.yml").write_text("defaults:\n  header_files:\n    Authorization: token\n")
    with pytest.raises(ConfigError, match=r"c.yml:3: defaults.header_files.Authorization: .*one line"):
        load_config_file(tmp_path / "c.yml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        parse(["--config", str(tmp_path / "nope.yml")])


def test_listen_value_is_usable() -> None:
    assert parse_listen("127.0.0.1:9188") == ("127.0.0.1", 9188)


def test_cli_parse_config_reads_the_file(tmp_path: Path) -> None:
    config, _args = cli.parse_config(["--config", str(example_dir(tmp_path))], environ={})
    assert [i.name for i in config.instances] == ["gpu0", "gpu1", "render-farm"]
    assert config.listen_port == 9188 and config.gpu_expected_count == 2
    assert config.web_config_file == str(tmp_path / "web.yml")
