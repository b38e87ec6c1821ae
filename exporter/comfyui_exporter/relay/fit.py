"""Cut and split text so that every robot message fits its robot's size limit.

Robots reject an oversize message outright (DingTalk 460101, WeCom 40058, Feishu 9499), which would lose
the alert. Python strings index code points, so any cut is on a UTF-8 character boundary; on top of that
cuts avoid splitting user-perceived characters (emoji ZWJ sequences, skin tones, flags, combining
marks), so a cut never leaves a half emoji or a stray accent. Splitting prefers line boundaries so that
markdown links and list items stay intact.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

_ZWJ = "\u200d"


def _extends_previous(ch: str) -> bool:
    """True if ``ch`` belongs to the character before it (so a cut must not fall just before it)."""
    cp = ord(ch)
    return (
        ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (emoji presentation)
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tones
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF
        or cp == 0x20E3  # keycap
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def safe_boundary(text: str, index: int) -> int:
    """The largest index <= ``index`` at which cutting ``text`` does not split a character cluster."""
    index = max(0, min(index, len(text)))
    while 0 < index < len(text) and (_extends_previous(text[index]) or text[index - 1] == _ZWJ):
        index -= 1
    if 0 < index < len(text) and _is_regional(text[index]) and _is_regional(text[index - 1]):
        run = 0
        while index - run - 1 >= 0 and _is_regional(text[index - run - 1]):
            run += 1
        if run % 2 == 1:  # we are between the two halves of a flag
            index -= 1
    return index


def cut_to_fit(text: str, fits: Callable[[str], bool]) -> str:
    """Longest safe prefix of ``text`` for which ``fits`` holds (``fits`` must be monotone)."""
    if fits(text):
        return text
    lo, hi = 0, len(text)  # fits(text[:lo]) assumed, not fits(text[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid
    # A "cluster" longer than the whole limit (hostile input) is cut inside: still valid UTF-8.
    return text[: safe_boundary(text, lo) or lo]


def cut_bytes(text: str, max_bytes: int) -> str:
    """Longest safe prefix of ``text`` whose UTF-8 encoding has at most ``max_bytes`` bytes."""
    return cut_to_fit(text, lambda s: len(s.encode("utf-8")) <= max_bytes)


def split_to_fit(
    text: str, fits: Callable[[str], bool], header: Callable[[int, int], str], max_parts: int | None = None
) -> list[str]:
    """Split ``text`` into parts that each fit, prefixing ``header(i, n)``; one part if it fits as is.

    Whole lines are packed into each part (found by galloping + binary search, so the cost is a few
    ``fits`` calls per part, not one per line); a line too long for a part is cut at safe boundaries,
    starting in the current part's free space. With ``max_parts``, splitting stops as soon as more parts
    than that are needed (the caller will shorten the message anyway). Raises ``ValueError`` if not even
    one character fits (a limit smaller than the message frame).
    """
    if fits(text):
        return [text]
    probe = header(99, 99)  # reserve room for the widest header
    lines = text.split("\n")
    chunks: list[str] = []
    current, i = "", 0

    def joined(j: int) -> str:
        return "\n".join(([current] if current else []) + lines[i:j])

    while i < len(lines) and (max_parts is None or len(chunks) <= max_parts):
        if fits(probe + joined(i + 1)):
            lo, step = i + 1, 1
            while lo + step <= len(lines) and fits(probe + joined(lo + step)):
                lo, step = lo + step, step * 2
            hi = min(lo + step, len(lines) + 1)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(probe + joined(mid)) else (lo, mid)
            current, i = joined(lo), lo
            continue
        line = lines[i]
        if current and fits(probe + line):  # a short line that does not fit here: next part
            chunks.append(current)
            current = ""
            continue
        # A line longer than a whole part: cut it, starting in the current part's free space.
        i += 1
        while line:
            prefix = current + "\n" if current else ""
            piece = cut_to_fit(line, lambda s, prefix=prefix: fits(probe + prefix + s))
            if not piece:
                if not current:
                    raise ValueError("size limit is smaller than one character plus the message frame")
                chunks.append(current)
                current = ""
                continue
            current = prefix + piece
            line = line[len(piece) :]
            if line:
                chunks.append(current)
                current = ""
    if current:
        chunks.append(current)
    total = len(chunks)
    return [header(i + 1, total) + chunk for i, chunk in enumerate(chunks)]
