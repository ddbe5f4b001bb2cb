"""Durations: `500ms`, `30s`, `5m`, `1h`, `1m30s` or a number of seconds, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tempeh_tui.definition.types import format_duration, parse_duration


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("1.5m", 90.0),
        ("2d", 172800.0),
        ("0", 0.0),
        ("12", 12.0),
        ("2.5", 2.5),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_a_duration_is_read_as_seconds(written: str | float, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    "written", ["5x", "-1s", "-1", "", "s", "1s5", "m5", "1 minute", "inf", "nan", True, None]
)
def test_a_bad_duration_is_refused_with_the_expected_forms(written: object) -> None:
    with pytest.raises(ValueError, match="500ms, 30s, 5m, 1h"):
        parse_duration(written)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.5, "500ms"), (0.0, "0ms"), (30.0, "30s"), (90.0, "1m30s"), (3600.0, "1h"), (5400, "1h30m")],
)
def test_a_duration_is_shown_in_its_short_form(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@given(st.integers(min_value=1, max_value=10**7))
def test_whole_seconds_survive_a_round_trip_exactly(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=999))
def test_milliseconds_survive_a_round_trip(milliseconds: int) -> None:
    assert parse_duration(format_duration(milliseconds / 1000)) == pytest.approx(
        milliseconds / 1000
    )


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False, allow_infinity=False))
def test_any_duration_reads_back_within_the_precision_it_is_shown_with(seconds: float) -> None:
    back = parse_duration(format_duration(seconds))
    tolerance = 0.0005 if seconds < 1 else 0.001 * seconds if seconds < 60 else 0.5
    assert abs(back - seconds) <= tolerance
