"""HA cases that need the relay's idempotency (issue 15, point 2): the same notification reaches
the relay twice and must still be ONE robot message.

* the relay delivered, but its 200 never reached Alertmanager (the answer is lost; the relay is
  restarted before the retry comes, so the journal must remember across a restart);
* the relay is down for longer than the peer timeout: every peer in turn finds nothing in the
  notification log and sends too; when the relay is back, all of them deliver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.binaries import wait_until

from .ha_stack import PEER_TIMEOUT_S, HAStack, ha_stack

pytestmark = pytest.mark.e2e

INSTANCES = ["ha-lost", "ha-longdown"]
QUIET_S = 2 * PEER_TIMEOUT_S + 5 + 1
DINGTALK = "/alerts/dingtalk"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAStack]:
    with ha_stack(Path(tmp_path_factory.mktemp("ha-idem")), INSTANCES) as stack:
        yield stack
        print(f"\n[ha] {stack.notes}")


def test_delivered_but_answer_lost_relay_restarted_retry_is_not_sent_again(ha: HAStack) -> None:
    ha.link.drop_next_answer(DINGTALK)
    started = ha.fail("ha-lost")
    wait_until(
        lambda: ha.link.seen(DINGTALK, "answer_dropped", "ha-lost"),
        30,
        interval=0.05,
        what="the relay's answer to be lost",
    )
    assert len(ha.messages("ha-lost")) == 1  # it was delivered
    ha.relay.stop()  # restarted before Alertmanager's retry arrives
    ha.relay.start()
    wait_until(
        lambda: ha.link.seen(DINGTALK, "forwarded", "ha-lost"),  # a retry, answered by the new relay
        30,
        interval=0.05,
        what="Alertmanager's retry to reach the restarted relay",
    )
    ha.notes["answer_lost_retry_s"] = round(time.time() - started, 2)
    time.sleep(QUIET_S)
    assert len(ha.messages("ha-lost")) == 1, [m.text[:120] for m in ha.messages("ha-lost")]
    assert all(e.status == 200 for e in ha.link.seen(DINGTALK, "forwarded", "ha-lost"))


def test_relay_down_longer_than_peer_timeout_every_peer_retries_one_message(ha: HAStack) -> None:
    ha.relay.stop()
    ha.fail("ha-longdown")
    # position 0 finds the relay down, then position 1 (after 1 peer_timeout) and 2 (after 2)
    wait_until(
        lambda: (
            len({e.at // 1 for e in ha.link.seen(DINGTALK, "refused", "ha-longdown")}) >= 3
            and time.time() - ha.link.seen(DINGTALK, "refused", "ha-longdown")[0].at > 2 * PEER_TIMEOUT_S + 1
        ),
        40,
        interval=0.1,
        what="every peer to try the relay",
    )
    ha.relay.start()
    ha.wait_message("ha-longdown", timeout=60)
    time.sleep(QUIET_S)
    assert len(ha.link.seen(DINGTALK, "forwarded", "ha-longdown")) >= 2, "the relay was asked only once"
    assert len(ha.messages("ha-longdown")) == 1, [m.text[:120] for m in ha.messages("ha-longdown")]
