"""The Grafana variable substitution used by the dashboard tests behaves like Grafana's."""

from __future__ import annotations

import pytest
from grafana_interpolate import TimeContext, Var, interpolate, references, round_interval_ms, seconds_to_hms

T = TimeContext(from_s=0, to_s=6 * 3600, scrape_interval_s=15, max_data_points=1000)


def _v(**kw: Var) -> dict[str, Var]:
    return dict(kw)


def test_multi_value_becomes_an_escaped_regex_group() -> None:
    v = _v(c=Var("c", ["comfy-a", "comfy.b"], multi=True, include_all=True, all_value=".*"))
    assert interpolate('up{comfyui=~"$c"}', v, T) == 'up{comfyui=~"(comfy-a|comfy\\\\.b)"}'
    assert interpolate('up{comfyui=~"${c}"}', v, T) == 'up{comfyui=~"(comfy-a|comfy\\\\.b)"}'
    assert interpolate('up{comfyui=~"[[c]]"}', v, T) == 'up{comfyui=~"(comfy-a|comfy\\\\.b)"}'


def test_one_value_of_a_multi_variable_has_no_group() -> None:
    v = _v(c=Var("c", ["comfy.b"], multi=True, include_all=True))
    assert interpolate('up{comfyui=~"$c"}', v, T) == 'up{comfyui=~"comfy\\\\.b"}'


def test_all_with_custom_all_value_is_inserted_raw() -> None:
    v = _v(c=Var("c", ["a", "b"], multi=True, include_all=True, all_value=".*", is_all=True))
    assert interpolate('up{comfyui=~"$c"}', v, T) == 'up{comfyui=~".*"}'
    assert interpolate('up{comfyui=~"${c:regex}"}', v, T) == 'up{comfyui=~".*"}'


def test_all_without_custom_all_value_lists_every_value() -> None:
    v = _v(c=Var("c", ["a", "b"], multi=True, include_all=True, is_all=True))
    assert interpolate('up{comfyui=~"$c"}', v, T) == 'up{comfyui=~"(a|b)"}'


def test_plain_variable_is_only_quote_escaped() -> None:
    v = _v(x=Var("x", ["it's.a"]))
    assert interpolate("$x", v, T) == "it\\\\'s.a"


def test_explicit_formats() -> None:
    v = _v(c=Var("c", ["a.b", "c"], multi=True, include_all=True))
    assert interpolate("${c:regex}", v, T) == "(a\\.b|c)"
    assert interpolate("${c:pipe}", v, T) == "a.b|c"
    assert interpolate("${c:csv}", v, T) == "a.b,c"
    assert interpolate("${c:raw}", v, T) == "a.b,c"
    assert interpolate("${c:glob}", v, T) == "{a.b,c}"
    assert interpolate("[[c:pipe]]", v, T) == "a.b|c"
    with pytest.raises(ValueError, match="unsupported"):
        interpolate("${c:nonsense}", v, T)


def test_builtin_time_variables() -> None:
    # 6 h over 1000 points = 21.6 s -> rounded to 20 s; above the 15 s scrape interval
    assert interpolate("$__interval $__interval_ms", {}, T) == "20s 20000"
    # max(20 + 15, 4 * 15) = 60
    assert interpolate("[$__rate_interval]", {}, T) == "[60s]"
    assert interpolate("$__range $__range_s $__range_ms", {}, T) == "21600s 21600 21600000"
    short = TimeContext(from_s=100, to_s=160, scrape_interval_s=1, max_data_points=500)
    # 60 s / 500 = 120 ms -> 100 ms, raised to the 1 s scrape interval; rate: max(1 + 1, 4)
    assert interpolate("$__interval [$__rate_interval] $__range", {}, short) == "1s [4s] 60s"
    assert interpolate("${__range_s}", {}, short) == "60"


def test_interval_rounding_matches_grafana() -> None:
    assert round_interval_ms(21600) == 20000
    assert round_interval_ms(90_000) == 120_000
    assert seconds_to_hms(120) == "2m"
    assert seconds_to_hms(0.5) == "500ms"
    assert seconds_to_hms(3600) == "1h"


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(KeyError):
        interpolate("$nope", {}, T)


def test_references() -> None:
    assert references('a{x=~"$c", y="${d:regex}"}[$__rate_interval] [[e]]') == {
        "c",
        "d",
        "e",
        "__rate_interval",
    }
