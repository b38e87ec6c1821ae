"""relay.yml validation: every problem names the offending key; secrets come from files/env only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from relay_helpers import harness, payload

from comfyui_exporter.relay.config import ConfigError, load_config, parse_config, parse_size

DING_URL = "https://oapi.dingtalk.com/robot/send?access_token=TEST-ONLY-not-a-real-token"
DING_SECRET = "SEC-test-only-not-a-real-secret"


def base(tmp_path: Path, **target: Any) -> dict[str, Any]:
    (tmp_path / "token").write_text("relay-bearer-token-123\n")
    (tmp_path / "ding.url").write_text(DING_URL + "\n")
    (tmp_path / "ding.secret").write_text(DING_SECRET)
    t = {"type": "dingtalk", "url_file": "ding.url", "secret_file": "ding.secret", **target}
    return {
        "listen": "127.0.0.1:9189",
        "auth_token_file": "token",
        "journal": {"path": "j/journal.jsonl", "max_bytes": "50MB", "backups": 5},
        "targets": {"ops-dingtalk": t},
    }


def check_error(tmp_path: Path, data: dict[str, Any], key: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env or {}, tmp_path)
    assert info.value.key == key, str(info.value)
    message = str(info.value)
    assert message.startswith(key)
    for secret in (DING_URL, DING_SECRET, "0123456789abcdef0123456789abcdef", "relay-bearer-token-123"):
        assert secret not in message
    return message


def test_valid_config_resolves_files_relative_to_config(tmp_path: Path) -> None:
    data = base(
        tmp_path,
        keyword="告警",
        language="en",
        mention={"mobiles": [13800000000], "user_ids": ["u1"], "all_on_critical": True},
    )
    (tmp_path / "relay.yml").write_text(yaml.safe_dump(data, allow_unicode=True))
    cfg = load_config(tmp_path / "relay.yml", env={})
    t = cfg.targets["ops-dingtalk"]
    assert t.url.reveal() == DING_URL and t.secret is not None and t.secret.reveal() == DING_SECRET
    assert DING_URL not in repr(t) and DING_SECRET not in repr(t) and DING_SECRET not in str(cfg)
    assert t.mention.mobiles == ("13800000000",) and t.mention.all_on_critical
    assert t.rate_limit.per_minute == 20 and t.rate_limit.burst == 5 and t.rate_limit.per_second is None
    assert cfg.journal.path == tmp_path / "j/journal.jsonl" and cfg.journal.max_bytes == 50 * 1024 * 1024
    assert cfg.delivery.deadline_seconds == 8.0 and cfg.listen_port == 9189


def test_secrets_from_env(tmp_path: Path) -> None:
    data = base(tmp_path)
    data.pop("auth_token_file")
    data["auth_token_env"] = "RELAY_TOKEN"
    data["targets"]["ops-dingtalk"] = {"type": "feishu", "url_env": "FS_URL", "secret_env": "FS_SECRET"}
    env = {
        "RELAY_TOKEN": "tok-from-env",
        "FS_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/abc",
        "FS_SECRET": "fs-secret-1",
    }
    cfg = parse_config(data, env, tmp_path)
    t = cfg.targets["ops-dingtalk"]
    assert (
        cfg.auth_token.reveal() == "tok-from-env"
        and t.secret is not None
        and t.secret.reveal() == "fs-secret-1"
    )
    assert t.rate_limit.per_second == 5 and t.rate_limit.per_minute == 100
    del env["FS_SECRET"]
    msg = check_error(tmp_path, data, "targets.ops-dingtalk.secret_env", env)
    assert "FS_SECRET" in msg


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (
            lambda d: d["targets"]["ops-dingtalk"].update(secrt_file="x"),
            "targets.ops-dingtalk.secrt_file",
            "did you mean secret_file",
        ),
        (lambda d: d.update(jounral={}), "jounral", "did you mean journal"),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(type="slack"),
            "targets.ops-dingtalk.type",
            "dingtalk",
        ),
        (lambda d: d["targets"]["ops-dingtalk"].pop("url_file"), "targets.ops-dingtalk.url_file", "required"),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(url_file="missing.url"),
            "targets.ops-dingtalk.url_file",
            "missing.url",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(url="https://x/y?access_token=abcdefgh12345678"),
            "targets.ops-dingtalk.url",
            "inline secrets",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(language="fr"),
            "targets.ops-dingtalk.language",
            "zh, en",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(timezone="Mars/Base"),
            "targets.ops-dingtalk.timezone",
            "Mars/Base",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(rate_limit={"per_minute": 30}),
            "targets.ops-dingtalk.rate_limit.per_minute",
            "limit of 20",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(rate_limit={"per_minute": 10, "burst": 11}),
            "targets.ops-dingtalk.rate_limit.burst",
            "<= per_minute",
        ),
        (
            lambda d: d["targets"]["ops-dingtalk"].update(mention={"mobiles": "138"}),
            "targets.ops-dingtalk.mention.mobiles",
            "list",
        ),
        (lambda d: d["journal"].update(max_bytes="lots"), "journal.max_bytes", "size"),
        (lambda d: d.update(listen="9189"), "listen", "host:port"),
        (lambda d: d.pop("auth_token_file"), "auth_token_file", "required"),
        (lambda d: d.update(targets={}), "targets", "at least one"),
        (lambda d: d.update(delivery={"deadline_seconds": "soon"}), "delivery.deadline_seconds", "number"),
        (lambda d: d.update(exporter_failures_url="ftp://x"), "exporter_failures_url", "http"),
    ],
)
def test_errors_name_the_offending_key(tmp_path: Path, mutate: Any, key: str, words: str) -> None:
    data = base(tmp_path)
    mutate(data)
    assert words in check_error(tmp_path, data, key)


def test_wecom_rejects_dingtalk_only_keys(tmp_path: Path) -> None:
    data = base(tmp_path)
    data["targets"]["ops-dingtalk"]["type"] = "wecom"  # wecom has no signing secret
    check_error(tmp_path, data, "targets.ops-dingtalk.secret_file")


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    data = base(tmp_path)
    (tmp_path / "empty").write_text("\n")
    data["targets"]["ops-dingtalk"]["secret_file"] = "empty"
    assert "empty" in check_error(tmp_path, data, "targets.ops-dingtalk.secret_file")


def test_url_file_without_url_is_reported_without_its_content(tmp_path: Path) -> None:
    data = base(tmp_path)
    (tmp_path / "ding.url").write_text("not-a-url-but-secret-0123456789")
    msg = check_error(tmp_path, data, "targets.ops-dingtalk.url_file")
    assert "not-a-url-but-secret" not in msg


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50MB", 50 * 1024**2),
        ("10KiB", 10 * 1024),
        ("1g", 1024**3),
        (4096, 4096),
        ("2.5M", int(2.5 * 1024**2)),
    ],
)
def test_parse_size(text: Any, size: int) -> None:
    assert parse_size(text, "k") == size


def test_parse_size_rejects_nonsense() -> None:
    for bad in ("", "MB", "-1", 0, "1 TB"):
        with pytest.raises(ConfigError):
            parse_size(bad, "journal.max_bytes")


REPO = Path(__file__).resolve().parents[2]


def _fake_secrets(directory: Path, text: str) -> str:
    """Point every /run/secrets/<x> in ``text`` at a file under ``directory`` holding a plausible value."""
    directory.mkdir(exist_ok=True)
    for name in set(re.findall(r"/run/secrets/([\w.-]+)", text)):
        (directory / name).write_text("https://robot.example/hook?access_token=abcdef0123456789")
    return text.replace("/run/secrets", str(directory))


def test_deploy_example_is_valid_and_keeps_secrets_in_files(tmp_path: Path) -> None:
    text = (REPO / "deploy/relay/relay.yml").read_text()
    data = yaml.safe_load(text)
    files = [v for t in data["targets"].values() for k, v in t.items() if k.endswith("_file")]
    assert files and all(f.startswith("/run/secrets/") for f in [*files, data["auth_token_file"]])
    text = _fake_secrets(tmp_path / "run", text).replace("/var/lib/comfyui-alert-relay", str(tmp_path))
    cfg = parse_config(yaml.safe_load(text), {}, tmp_path)
    assert sorted(cfg.targets) == ["dingtalk", "feishu", "wecom"]  # the paths alertmanager.yml posts to
    assert cfg.delivery.deadline_seconds < 10  # below Alertmanager 0.25's webhook timeout


def test_docs_have_a_section_per_robot_in_both_languages_with_working_snippets(tmp_path: Path) -> None:
    doc = (REPO / "docs/relay.md").read_text()
    for heading in ("### DingTalk", "### WeCom", "### Feishu", "### 钉钉", "### 企业微信", "### 飞书"):
        assert heading in doc
    snippets = [
        block for block in re.findall(r"```yaml\n(.*?)```", doc, re.S) if block.startswith("targets:")
    ]
    assert len(snippets) == 6
    for block in snippets:
        data = yaml.safe_load(_fake_secrets(tmp_path / "run", block))
        (tmp_path / "token").write_text("doc-token-0001")
        data.update(auth_token_file=str(tmp_path / "token"), journal={"path": str(tmp_path / "j.jsonl")})
        parse_config(data, {}, tmp_path)


def test_deploy_example_needs_url_files_only_for_the_robots_in_use(tmp_path: Path) -> None:
    """Only DingTalk's secret files exist: wecom and feishu are disabled, not a start-up error."""
    text = (REPO / "deploy/relay/relay.yml").read_text()
    run = tmp_path / "run"
    run.mkdir()
    (run / "relay_token").write_text("relay-token-only-ding-0001")
    (run / "dingtalk_url").write_text("https://oapi.dingtalk.com/robot/send?access_token=onlyding0000001")
    (run / "dingtalk_secret").write_text("SEConlyding00000000001")
    text = text.replace("/run/secrets", str(run)).replace("/var/lib/comfyui-alert-relay", str(tmp_path))
    cfg = parse_config(yaml.safe_load(text), {}, tmp_path)
    assert sorted(cfg.targets) == ["dingtalk"]
    assert sorted(cfg.disabled_targets) == ["feishu", "wecom"]
    assert "feishu_url does not exist" in cfg.disabled_targets["feishu"]
    (run / "dingtalk_url").unlink()  # none at all: a journal-only relay
    assert parse_config(yaml.safe_load(text), {}, tmp_path).targets == {}


def test_optional_target_still_validated_and_a_present_bad_url_is_an_error(tmp_path: Path) -> None:
    data = base(tmp_path, optional=True)
    (tmp_path / "ding.url").unlink()
    assert parse_config(data, {}, tmp_path).disabled_targets == {
        "ops-dingtalk": f"url_file {tmp_path / 'ding.url'} does not exist"
    }
    data = base(tmp_path, optional=True, langauge="en")
    (tmp_path / "ding.url").unlink()  # disabled, and still its typo is reported
    check_error(tmp_path, data, "targets.ops-dingtalk.langauge")
    data = base(tmp_path, optional=True)
    (tmp_path / "ding.url").write_text("not a url")
    check_error(tmp_path, data, "targets.ops-dingtalk.url_file")
    data = base(tmp_path)  # not optional: a missing URL file stays a start-up error
    (tmp_path / "ding.url").unlink()
    check_error(tmp_path, data, "targets.ops-dingtalk.url_file")


async def test_disabled_target_is_answered_404_saying_why(tmp_path: Path) -> None:
    targets = {
        "d": {"type": "dingtalk"},
        "w": {"type": "wecom", "optional": True, "url_env": "NO_SUCH_ENV", "url": None},
    }
    async with harness(tmp_path, targets) as h:
        assert sorted(h.relay.config.targets) == ["d"]
        status, answer = await h.post("w", payload())
        assert status == 404 and "NO_SUCH_ENV is unset or empty" in answer["detail"], answer
        assert (await h.post("d", payload()))[0] == 200
