"""No secret (robot URL tokens, signing secrets, the bearer token) in any log line, journal record,
HTTP answer or metric, across success, failure, outage, rejection and reload paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from relay_helpers import alert, harness, payload

from comfyui_exporter.relay.redact import REDACTOR, Secret, install_log_redaction, safe_url

DING_TOKEN = "dingtoken0a1b2c3d4e5f60718293a4b5c6d7e8f9"
DING_SECRET = "SECdingsecretZZZ0123456789abcdefghijklmnop"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
FEISHU_HOOK = "feishuhook-8d2c-4e4f-9d3b-2f1e0a9c7b6d"
FEISHU_SECRET = "feishuSecretQQQ987654321"
DEAD_TOKEN = "deadrobottoken5566778899aabbccdd"


async def test_no_secret_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    targets = {
        "ding": {"type": "dingtalk", "robot": {"secret": DING_SECRET, "token": DING_TOKEN}},
        "wrongsig": {"type": "dingtalk", "url": "", "secret": "SECnotTheRightOne0000000"},
        "wecom": {"type": "wecom", "robot": {"key": WECOM_KEY}},
        "feishu": {"type": "feishu", "robot": {"secret": FEISHU_SECRET, "hook": FEISHU_HOOK}},
        "dead": {"type": "dingtalk", "url": f"http://127.0.0.1:9/robot/send?access_token={DEAD_TOKEN}"},
    }
    targets["wrongsig"]["url"] = "placeholder"
    delivery = {"deadline_seconds": 0.6, "attempt_timeout_seconds": 0.2, "backoff_initial_seconds": 0.05}
    answers: list[str] = []
    async with harness(
        tmp_path, {k: v for k, v in targets.items() if k != "wrongsig"}, delivery=delivery, scale=0.05
    ) as h:
        cfg = yaml.safe_load(h.config_path.read_text())  # add the wrong-secret target via a reload
        (tmp_path / "secrets" / "wrongsig.url").write_text(h.relay.config.targets["ding"].url.reveal())
        (tmp_path / "secrets" / "wrongsig.secret").write_text("SECnotTheRightOne0000000")
        cfg["targets"]["wrongsig"] = {
            "type": "dingtalk",
            "url_file": str(tmp_path / "secrets/wrongsig.url"),
            "secret_file": str(tmp_path / "secrets/wrongsig.secret"),
        }
        h.config_path.write_text(yaml.safe_dump(cfg))
        await h.relay.reload()
        token = h.token
        for name in ("ding", "wecom", "feishu", "wrongsig", "dead"):  # OK x3, 500, connection refused
            answers.append(str(await h.post(name, payload(alert(fingerprint=name)))))
        h.robots.down(502)
        answers.append(str(await h.post("ding", payload())))
        h.robots.up()
        answers.append(str(await h.post("ding", payload(), token=token[:-1] + "x")))  # 401
        answers.append(str(await h.post("ding", payload(), token=f"{token}")))
        cfg["targets"]["ding"]["url_file"] = str(tmp_path / "secrets" / "missing.url")  # failing reload
        h.config_path.write_text(yaml.safe_dump(cfg))
        async with h.session.post(f"{h.url}/-/reload", headers={"Authorization": f"Bearer {token}"}) as r:
            answers.append(await r.text())
        answers.append(await h.metrics())
        statuses = [a[:4] for a in answers[:8]]
        assert statuses == ["(200", "(200", "(200", "(500", "(503", "(503", "(401", "(200"], statuses
    journal = "".join(p.read_text() for p in tmp_path.glob("journal.jsonl*"))
    logs = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "sign not match" in logs and "cannot connect" in logs  # the failure paths really ran
    haystacks = {"logs": logs, "journal": journal, "answers": "\n".join(answers)}
    for secret in (
        DING_TOKEN,
        DING_SECRET,
        WECOM_KEY,
        FEISHU_HOOK,
        FEISHU_SECRET,
        DEAD_TOKEN,
        "SECnotTheRightOne0000000",
        token,
    ):
        for where, text in haystacks.items():
            assert secret not in text, f"secret leaked into {where}"


def test_redaction_is_the_safety_net(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    REDACTOR.register(Secret("https://oapi.dingtalk.com/robot/send?access_token=netTokenABCDEFGH1234", "t"))
    caplog.set_level(logging.INFO)
    log = logging.getLogger("some.library")
    log.info("posting to %s", "https://oapi.dingtalk.com/robot/send?access_token=netTokenABCDEFGH1234")
    try:
        raise RuntimeError("failed: netTokenABCDEFGH1234")
    except RuntimeError:
        log.exception("boom")
    assert "netTokenABCDEFGH1234" not in caplog.text and "***" in caplog.text


def test_secret_repr_and_safe_url() -> None:
    s = Secret("hunter2-very-secret", "file /run/secrets/x")
    assert "hunter2" not in repr(s) and "hunter2" not in f"{s}" and "/run/secrets/x" in repr(s)
    assert safe_url("https://open.feishu.cn/open-apis/bot/v2/hook/abcdef") == "https://open.feishu.cn/…"


# A target behind a proxy path whose last segment is its (long) name: names and paths are not secrets.
PROXY_NAME = "ops-dingtalk-production"
PROXY_TOKEN = "proxytoken77aa88bb99cc00dd"


async def test_target_names_and_url_paths_are_never_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    targets = {
        PROXY_NAME: {
            "type": "dingtalk",
            "robot": {"token": PROXY_TOKEN, "path": f"/corp-proxy/dingtalk/{PROXY_NAME}"},
        },
        "dead-robot-behind-proxy": {
            "type": "wecom",
            "url": "http://127.0.0.1:9/corp-proxy/wecom/dead-robot-behind-proxy?key=deadkey0011223344",
        },
    }
    delivery = {"deadline_seconds": 0.6, "attempt_timeout_seconds": 0.2, "backoff_initial_seconds": 0.05}
    async with harness(tmp_path, targets, delivery=delivery, scale=0.05) as h:
        assert (await h.post(PROXY_NAME, payload(alert(fingerprint="p1"))))[0] == 200
        assert (await h.post("dead-robot-behind-proxy", payload(alert(fingerprint="p2"))))[0] == 503
        assert (await h.post(PROXY_NAME, payload(), token="wrong"))[0] == 401
        metrics = await h.metrics()
    journal = "".join(p.read_text() for p in tmp_path.glob("journal.jsonl*"))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in {"logs": logs, "journal": journal}.items():
        for name in (PROXY_NAME, "dead-robot-behind-proxy"):
            assert name in text, f"target name {name} masked in {where}"
        for secret in (PROXY_TOKEN, "deadkey0011223344", h.token):
            assert secret not in text, f"secret leaked into {where}"
    assert f'target="{PROXY_NAME}"' in metrics
    # the path is shown (with the token masked) where the relay names a robot URL
    assert f"/corp-proxy/dingtalk/{PROXY_NAME}?access_token=***" in logs
    assert f"rejected POST /alerts/{PROXY_NAME}" in logs


def test_secret_values_are_masked_not_things_that_look_long() -> None:
    install_log_redaction()
    REDACTOR.register(Secret(f"https://proxy.corp/dingtalk/{PROXY_NAME}?access_token=regTok12345678", "t"))
    REDACTOR.register(Secret("https://open.feishu.cn/open-apis/bot/v2/hook/hookid-0a1b2c3d4e5f", "t"))
    text = (
        f"target {PROXY_NAME} url /dingtalk/{PROXY_NAME} fingerprint 4f1c9e0d2b7a66aa ref 0123456789ab "
        "prompt 8a3c1f2e-5d6b-4c7a-9e8f-0b1c2d3e4f5a model sd_xl_base_1.0.safetensors "
        "token regTok12345678 in text; feishu hookid-0a1b2c3d4e5f; "
        "unknown robot http://h/x?access_token=unreg111&sign=c2lnbmF0dXJl%3D&timestamp=1700000000000 "
        "wecom http://h/cgi-bin/webhook/send?key=unregKey222 basic http://user:hunter2pass@h/ "
        "header Authorization: Bearer unregBearer333"
    )
    out = REDACTOR.scrub(text)
    for kept in (
        PROXY_NAME,
        f"/dingtalk/{PROXY_NAME}",
        "4f1c9e0d2b7a66aa",
        "0123456789ab",
        "8a3c1f2e-5d6b-4c7a-9e8f-0b1c2d3e4f5a",
        "sd_xl_base_1.0.safetensors",
        "/cgi-bin/webhook/send",
        "timestamp=1700000000000",
    ):
        assert kept in out, (kept, out)
    for gone in ("regTok12345678", "hookid-0a1b2c3d4e5f", "unreg111", "c2lnbmF0dXJl", "unregKey222"):
        assert gone not in out, (gone, out)
    assert "hunter2pass" not in out and "unregBearer333" not in out
    assert "access_token=***" in out and "key=***" in out and "sign=***" in out
