"""Turn notifications into robot-sized parts: one message, a split message, or a merged one.

Strategy, in order of preference, for one notification:
1. the whole rendered message in one robot message;
2. split at line boundaries into at most ``max_parts`` messages (each costs a rate-limit token);
3. pathological summaries/descriptions shortened (2000, 500, 160 characters, ending in "…");
4. fewer alert details ("…N more alerts"), the summary counts always kept;
5. as a last resort cut the last part, marked as truncated.
A merged message is always exactly one robot message: it lists as many alerts as fit and counts the
rest (they are all in the journal). Whatever the input, no part exceeds the robot's limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .config import TargetConfig
from .failures import FailureDetail
from .fit import cut_to_fit, split_to_fit
from .payload import Payload
from .render import Message, Renderer
from .robots import Part, Robot
from .views import LEVELS

TRUNCATED = "\n\n…(truncated / 已截断)"
FIELD_LIMITS = (None, 2000, 500, 160)  # characters of summary/description, tried in this order


def _header(i: int, n: int) -> str:
    return f"({i}/{n})\n\n"


def _largest(lo: int, hi: int, ok: Callable[[int], bool], guess: int | None = None) -> int | None:
    """Largest k in [lo, hi] with ok(k) (ok monotone decreasing); None if even ok(lo) is false.

    Each ``ok`` is a render, the expensive part; so with a ``guess`` the search gallops out from it
    (1, 2, 4 ... steps) and then bisects: two or three renders when the guess is close.
    """
    good: int | None = None
    if guess is not None:
        g, step = min(max(guess, lo), hi), 1
        if ok(g):
            good = g
            while good < hi:
                nxt = min(hi, good + step)
                if not ok(nxt):
                    hi = nxt - 1
                    break
                good, step = nxt, step * 2
        else:
            hi = g - 1
            while hi >= lo:
                nxt = max(lo, g - step)
                if ok(nxt):
                    good = nxt
                    break
                hi, step = nxt - 1, step * 2
            if good is None:
                return None
    elif ok(lo):
        good = lo
    else:
        return None
    while good < hi:
        mid = (good + hi + 1) // 2
        if ok(mid):
            good = mid
        else:
            hi = mid - 1
    return good


def _tone(payloads: Sequence[Payload], merged: bool) -> str:
    if any(p.critical for p in payloads):
        return "critical"
    if merged:
        return "merged"
    return "firing" if payloads[0].status == "firing" else "resolved"


def _split(msg: Message, robot: Robot, tone: str, mention: bool, max_parts: int | None = None) -> list[Part]:
    probe_title = f"{msg.title} (99/99)"
    texts = split_to_fit(
        msg.text, lambda t: robot.fits(Part(probe_title, t, tone, mention)), _header, max_parts
    )
    n = len(texts)
    return [
        Part(msg.title if n == 1 else f"{msg.title} ({i}/{n})", text, tone, mention and i == 1)
        for i, text in enumerate(texts, 1)
    ]


def _truncate_last(parts: list[Part], robot: Robot) -> list[Part]:
    last = parts[-1]
    text = cut_to_fit(
        last.text, lambda t: robot.fits(Part(last.title, t + TRUNCATED, last.tone, last.mention))
    )
    return [*parts[:-1], Part(last.title, text + TRUNCATED, last.tone, last.mention)]


def _with_mention(parts: list[Part], robot: Robot, title: str, mention: bool) -> list[Part]:
    extra = robot.mention_part(title) if mention else None
    return [*parts, extra] if extra is not None else parts


def _guess(
    payload: Payload,
    target: TargetConfig,
    robot: Robot,
    renderer: Renderer,
    ref: str,
    field_limit: int | None,
    max_parts: int,
) -> int:
    """How many alert details probably fit, from the size of one detail and of the message frame."""
    n = len(payload.alerts)
    probe = min(n, 8)
    small = renderer.single(payload, target, ref, None, probe, field_limit=field_limit)
    empty = renderer.single(payload, target, ref, None, 0, field_limit=field_limit)
    per_alert = max(1.0, (len(small.text.encode()) - len(empty.text.encode())) / max(probe, 1))
    request = robot.prepare(Part(empty.title, empty.text), 0)
    frame = request.measured - len(empty.text.encode()) if request.measured > len(empty.text.encode()) else 0
    room = (request.limit - frame - 64) * max_parts - len(empty.text.encode())
    return int(max(0.0, room) / per_alert)


def compose_single(
    payload: Payload,
    target: TargetConfig,
    robot: Robot,
    renderer: Renderer,
    ref: str,
    failures: dict[str, FailureDetail] | None,
    max_parts: int,
) -> list[Part]:
    """Parts for one notification (see module docstring for the fallback order)."""
    tone = _tone([payload], merged=False)
    mention = payload.critical and target.mention.configured

    def parts_for(max_details: int | None, field_limit: int | None) -> list[Part]:
        msg = renderer.single(payload, target, ref, failures, max_details, field_limit=field_limit)
        return _split(msg, robot, tone, mention, max_parts)

    longest = max(
        (len(v) for a in payload.alerts for k, v in a.annotations.items() if k in ("summary", "description")),
        default=0,
    )
    longest = max([longest, *(len(v) for v in payload.common_annotations.values())])
    limits = [lim for lim in FIELD_LIMITS if lim is None or lim < longest]  # others change nothing
    for field_limit in limits:  # first shorten pathological summaries/descriptions
        parts = parts_for(None, field_limit)
        if len(parts) <= max_parts:
            return _with_mention(parts, robot, parts[0].title, mention)
    limit = limits[-1]  # then show fewer alerts in detail

    def fits(k: int) -> bool:
        return len(parts_for(k, limit)) <= max_parts

    k = _largest(
        0, len(payload.alerts), fits, _guess(payload, target, robot, renderer, ref, limit, max_parts)
    )
    parts = parts_for(k, limit) if k is not None else _truncate_last(parts_for(0, limit)[:max_parts], robot)
    return _with_mention(parts, robot, parts[0].title, mention)


def compose_merged(
    payloads: Sequence[Payload],
    target: TargetConfig,
    robot: Robot,
    renderer: Renderer,
    ref: str,
    failures: Sequence[dict[str, FailureDetail]] | None = None,
    rate_limited: bool = True,
) -> list[Part]:
    """One part for several notifications folded together while the rate limit is exhausted.

    Every alert is listed with its full detail if that fits; else the lines of :data:`.views.DROP_ORDER`
    are cut, least important first and for every alert alike, until it fits; only if even the most
    compact listing is too big are the last alerts left out (counted; all are in the journal).
    """
    tone = _tone(payloads, merged=True)
    mention = any(p.critical for p in payloads) and target.mention.configured

    def part_for(max_items: int | None, level: int) -> Part:
        msg = renderer.merged(
            payloads, target, ref, max_items, failures=failures, level=level, rate_limited=rate_limited
        )
        return Part(msg.title, msg.text, tone, mention)

    compact, total = LEVELS - 1, sum(len(p.alerts) for p in payloads)
    guess = _guess_items(part_for, robot) if total > 8 else total
    if total <= 2 * guess and robot.fits(part := part_for(None, 0)):  # (a far too long list: skip)
        pass
    elif total <= 2 * guess and robot.fits(whole := part_for(None, compact)):  # the first level that fits
        level = _largest(0, compact - 1, lambda lv: not robot.fits(part_for(None, lv)))
        part = part_for(None, level + 1) if level is not None and level + 1 < compact else whole
    else:  # even the most compact listing is too big: list as many alerts as fit
        k = _largest(0, total, lambda k: robot.fits(part_for(k, compact)), guess)
        part = part_for(k, compact) if k is not None else _truncate_last([part_for(0, compact)], robot)[0]
    return _with_mention([part], robot, part.title, mention)


def _guess_items(part_for: Callable[[int | None, int], Part], robot: Robot) -> int:
    """How many alerts probably fit at the most compact level: from the size of 8 and of none."""
    none, eight = part_for(0, LEVELS - 1), part_for(8, LEVELS - 1)
    base = robot.prepare(none, 0)
    per = max(1.0, (robot.prepare(eight, 0).measured - base.measured) / 8)
    return int(max(0, base.limit - base.measured) / per)
