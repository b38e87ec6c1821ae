"""Robot clients by config ``type``."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import TargetConfig
from .base import Outcome, Part, Request, Robot, SendResult
from .dingtalk import DingTalk
from .feishu import Feishu
from .wecom import WeCom

ROBOTS: dict[str, type[Robot]] = {"dingtalk": DingTalk, "wecom": WeCom, "feishu": Feishu}


def make_robot(target: TargetConfig, clock: Callable[[], float] = time.time) -> Robot:
    """The client for ``target.type``; ``clock`` is the wall clock used for signature timestamps."""
    return ROBOTS[target.type](target, clock)


__all__ = ["ROBOTS", "Outcome", "Part", "Request", "Robot", "SendResult", "make_robot"]
