"""Size cuts: never split a character (CJK, emoji, ZWJ sequences, flags), every part fits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exporter.relay.fit import cut_bytes, safe_boundary, split_to_fit

FAMILY = "👨\u200d👩\u200d👧"  # one visible emoji, five code points
THUMBS = "👍🏽"  # emoji + skin tone
FLAG_CN = "🇨🇳"  # two regional indicators
E_ACUTE = "e\u0301"  # e + combining acute


def test_cut_never_splits_a_cluster() -> None:
    for cluster in (FAMILY, THUMBS, FLAG_CN, E_ACUTE, "❤️"):
        text = "告警" + cluster + "结束"
        for limit in range(len("告警".encode()), len(text.encode()) + 1):
            cut = cut_bytes(text, limit)
            assert len(cut.encode("utf-8")) <= limit
            assert cut in ("告警", "告警" + cluster, text) or cut.startswith("告警" + cluster), (limit, cut)


def test_cut_chinese_at_character_boundary() -> None:
    text = "显存不足" * 10  # 3 bytes per character
    for limit in range(0, 40):
        cut = cut_bytes(text, limit)
        assert len(cut) == limit // 3 and cut.encode("utf-8").decode("utf-8") == cut


def test_flags_are_not_split_in_a_run() -> None:
    text = FLAG_CN * 3
    assert safe_boundary(text, 3) == 2 and safe_boundary(text, 4) == 4


def test_overlong_cluster_is_still_cut_validly() -> None:
    text = "a" + "\u0301" * 100  # hostile: one "character" bigger than the limit
    cut = cut_bytes(text, 20)
    assert 0 < len(cut.encode()) <= 20


def test_split_prefers_lines_and_numbers_parts() -> None:
    lines = [f"- 第{i}行 告警 🔥" for i in range(50)]
    text = "\n".join(lines)
    parts = split_to_fit(text, lambda s: len(s.encode()) <= 300, lambda i, n: f"({i}/{n})\n")
    assert len(parts) > 1 and all(len(p.encode()) <= 300 for p in parts)
    assert parts[0].startswith(f"(1/{len(parts)})\n")
    body = [line for p in parts for line in p.split("\n")[1:]]
    assert body == lines  # nothing lost, no line broken


cjk_emoji_text = st.lists(
    st.sampled_from(
        [*list("告警显存不足节点异常abcXYZ 0123\n-*[]()"), FAMILY, THUMBS, FLAG_CN, E_ACUTE, "🔥"]
    ),
    max_size=150,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(cjk_emoji_text, st.integers(min_value=40, max_value=400))
def test_fuzz_split_parts_fit_and_keep_every_character(text: str, limit: int) -> None:
    parts = split_to_fit(text, lambda s: len(s.encode("utf-8")) <= limit, lambda i, n: f"({i}/{n})\n")
    assert all(len(p.encode("utf-8")) <= limit for p in parts)
    if len(parts) == 1:
        assert parts[0] == text
        return
    rebuilt = "".join(p.split("\n", 1)[1] for p in parts)
    assert rebuilt.replace("\n", "") == text.replace("\n", "")


@settings(max_examples=200, deadline=None)
@given(cjk_emoji_text, st.integers(min_value=0, max_value=200))
def test_fuzz_cut_is_a_valid_prefix(text: str, limit: int) -> None:
    cut = cut_bytes(text, limit)
    assert text.startswith(cut) and len(cut.encode("utf-8")) <= limit
