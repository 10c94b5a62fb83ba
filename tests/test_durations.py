"""The one duration parser: accepted spellings, bounds with clear messages, never a crash."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands.backtest import parse_duration as backtest_duration
from bot.commands.common import UserError
from bot.durations import MAX_DURATION, DurationError, describe, parse_duration
from bot.slack.commands import UsageError
from bot.slack.commands import parse_duration as silence_duration

FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=600)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("5min", timedelta(minutes=5)),
        ("4h", timedelta(hours=4)),
        (" 4H ", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("365d", timedelta(days=365)),
        ("52w", timedelta(weeks=52)),
    ],
)
def test_accepted_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration: use e.g. 90s, 5m, 4h, 2d or 1w"),
        ("forever", "'forever' is not a duration"),
        ("1h30m", "is not a duration"),
        ("-1h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("٣d", "is not a duration"),  # Arabic-Indic digit: ASCII digits only
        ("5", "is not a duration"),  # bare numbers only where a setting took seconds
        ("0m", "must be longer than 0"),
        ("366d", "can be at most 365 days (365d)"),
        ("9999999999d", "can be at most 365 days (365d)"),
        ("9" * 5000 + "d", "is too long"),  # no int() of a 5000-digit string
    ],
)
def test_refusals_say_what_and_the_limit(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_duration(text)


def test_bare_seconds_and_custom_limits() -> None:
    assert parse_duration("300", bare_seconds=True) == timedelta(minutes=5)
    with pytest.raises(DurationError, match="a silence can be at most 30 days"):
        parse_duration("31d", maximum=timedelta(days=30), what="a silence")
    assert describe(timedelta(days=30)) == "30 days (30d)"
    assert describe(timedelta(weeks=1)) == "1 week (1w)"
    assert describe(timedelta(seconds=90)) == "90 seconds (90s)"


def test_slack_and_cli_use_the_one_parser() -> None:
    assert silence_duration("30d") == timedelta(days=30)
    with pytest.raises(UsageError, match="at most 30 days"):
        silence_duration("31d")
    with pytest.raises(UsageError, match="at most 30 days"):
        silence_duration("9999999999d")
    assert backtest_duration("2w", "--refit-every") == timedelta(weeks=2)
    with pytest.raises(UserError, match="--step: '999d' is too long"):
        backtest_duration("999d", "--step")


@FUZZ
@given(
    st.one_of(
        st.text(max_size=30),
        st.from_regex(r"\A\s*[0-9]{1,40}\s*(s|sec|m|min|h|d|w|x|)\s*\Z"),
    )
)
def test_any_text_is_a_bounded_duration_or_a_clear_refusal(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError as err:
        assert str(err) and len(str(err)) < 200
    else:
        assert timedelta(0) < value <= MAX_DURATION
