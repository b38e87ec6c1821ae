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


def split_to_fit(text: str, fits: Callable[[str], bool], header: Callable[[int, int], str]) -> list[str]:
    """Split ``text`` into parts that each fit, prefixing ``header(i, n)``; one part if it fits as is.

    Lines are packed greedily; a single line too long for a part is cut at safe boundaries. Raises
    ``ValueError`` if not even one character fits (a limit smaller than the message frame).
    """
    if fits(text):
        return [text]
    probe = header(99, 99)  # reserve room for the widest header
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if fits(probe + candidate):
            current = candidate
            continue
        if fits(probe + line):  # a short line: start the next part with it
            chunks.append(current)
            current = line
            continue
        # A line longer than a whole part: cut it, starting in the current part's free space.
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
