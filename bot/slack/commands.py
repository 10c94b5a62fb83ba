"""Parsing of ``/gpu-risk`` text: subcommand, arguments, the ``public`` modifier, durations."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from analysis.maintenance import MAX_RECURRING, WEEKDAYS
from bot.durations import DurationError
from bot.durations import parse_duration as parse_any_duration

COMMAND = "/gpu-risk"
SUBCOMMANDS: tuple[str, ...] = (
    "top",
    "why",
    "graph",
    "whatif",
    "silence",
    "unsilence",
    "maintenance",
    "status",
    "help",
)
MAX_SILENCE = timedelta(days=30)
MAX_INCIDENT_ID = 2**63 - 1  # the store's BIGINT
MAX_MAINTENANCE = timedelta(days=30)  # a one-off window; a recurring one lasts at most 7 days
MAINTENANCE_ACTIONS = ("add", "list", "remove")
MAINTENANCE_USAGE = (
    "`maintenance add <target> <duration> [at HH:MM] [on mon,tue,...] [reason]`, "
    "`maintenance list` or `maintenance remove <id>`"
)
_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$", re.ASCII)
_DAY_NAMES = {
    **{d: d for d in WEEKDAYS},
    "monday": "mon",
    "tuesday": "tue",
    "tues": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "thur": "thu",
    "thurs": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}


class UsageError(ValueError):
    """Malformed ``/gpu-risk`` input; the message says what was wrong."""


@dataclass(frozen=True)
class ParsedCommand:
    """One parsed invocation: ``name`` is a subcommand, ``args`` the rest, ``public`` the modifier."""

    name: str
    args: tuple[str, ...] = ()
    public: bool = False
    duration: timedelta | None = None
    reason: str = ""
    at: time | None = None
    days: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """The first argument (the entity the subcommand is about)."""
        return self.args[0] if self.args else ""


def parse_duration(text: str) -> timedelta:
    """Parse a silence's length: ``90s``, ``30m``, ``4h``, ``2d``, ``1w`` (at most 30 days)."""
    try:
        return parse_any_duration(text, maximum=MAX_SILENCE, what="a silence")
    except DurationError as err:
        raise UsageError(str(err)) from None


def parse_incident_id(value: Any) -> int:
    """An incident id from a button or modal: a positive integer below 2**63, else UsageError."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text:
        raise UsageError("no incident id given; use the buttons of a gpu-risk alert")
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not (
        0 < int(text) <= MAX_INCIDENT_ID
    ):
        shown = repr(text) if len(text) <= 30 else repr(text[:30])[:-1] + "…'"
        raise UsageError(f"{shown} is not an incident id; use the buttons of a gpu-risk alert")
    return int(text)


def parse(text: str) -> ParsedCommand:
    """Parse the text after ``/gpu-risk``; raise UsageError for malformed input."""
    words = text.split()
    public = False
    if words and words[-1].lower() == "public":
        public = True
        words = words[:-1]
    if not words:
        return ParsedCommand("top", public=public)
    name, rest = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, SUBCOMMANDS, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UsageError(f"unknown subcommand {words[0]!r}.{hint}")
    if name in ("top", "status", "help"):
        if rest:
            raise UsageError(f"`{name}` takes no arguments")
        return ParsedCommand(name, public=public)
    if name in ("why", "graph", "whatif", "unsilence"):
        if len(rest) != 1:
            raise UsageError(f"`{name}` takes exactly one name, e.g. `{name} gpu-node-007`")
        return ParsedCommand(name, (rest[0],), public=public)
    if name == "maintenance":
        return parse_maintenance(rest, public)
    # silence <target> <duration> [reason...]
    if len(rest) < 2:
        raise UsageError("`silence` needs a target and a duration, e.g. `silence pdu-a1 4h`")
    return ParsedCommand(
        "silence",
        (rest[0],),
        public=public,
        duration=parse_duration(rest[1]),
        reason=" ".join(rest[2:]),
    )


def parse_maintenance(rest: list[str], public: bool) -> ParsedCommand:
    """``maintenance add|list|remove ...``: args are (action, target or id)."""
    if not rest:
        raise UsageError(f"`maintenance` needs an action: {MAINTENANCE_USAGE}")
    action = rest[0].lower()
    if action not in MAINTENANCE_ACTIONS:
        close = difflib.get_close_matches(action, MAINTENANCE_ACTIONS, n=1, cutoff=0.5)
        hint = f" Did you mean `maintenance {close[0]}`?" if close else ""
        raise UsageError(
            f"unknown maintenance action {_shown(rest[0])}.{hint} Use {MAINTENANCE_USAGE}"
        )
    args = rest[1:]
    if action == "list":
        if args:
            raise UsageError("`maintenance list` takes no arguments")
        return ParsedCommand("maintenance", ("list",), public=public)
    if action == "remove":
        if len(args) != 1:
            raise UsageError(
                "`maintenance remove` takes one window id, e.g. `maintenance remove 3`"
            )
        return ParsedCommand(
            "maintenance", ("remove", str(parse_window_id(args[0]))), public=public
        )
    if len(args) < 2:
        raise UsageError(
            "`maintenance add` needs a target and a duration, e.g. `maintenance add rack-a1 4h` "
            "or `maintenance add rack-a1 4h at 02:00 on sun firmware`"
        )
    target, length, options = args[0], args[1], args[2:]
    at: time | None = None
    days: tuple[str, ...] = ()
    while len(options) >= 1 and options[0].lower() in ("at", "on"):
        keyword = options[0].lower()
        if len(options) < 2:
            example = "at 02:00" if keyword == "at" else "on mon,wed"
            raise UsageError(f"`{keyword}` needs a value, e.g. `{example}`")
        if keyword == "at":
            if at is not None:
                raise UsageError("give `at HH:MM` only once")
            at = parse_time_of_day(options[1])
        else:
            if days:
                raise UsageError("give `on <days>` only once, e.g. `on mon,wed`")
            days = parse_weekdays(options[1])
        options = options[2:]
    if days and at is None:
        raise UsageError(
            "`on <days>` makes a weekly window: say when it starts too, e.g. `at 02:00 on sun`"
        )
    duration = _maintenance_duration(length, recurring=at is not None)
    return ParsedCommand(
        "maintenance",
        ("add", target),
        public=public,
        duration=duration,
        reason=" ".join(options),
        at=at,
        days=days,
    )


def _maintenance_duration(text: str, *, recurring: bool) -> timedelta:
    """A window's length: at most 30 days, or 7 days for a recurring one."""
    what = "a recurring maintenance window" if recurring else "a maintenance window"
    limit = MAX_RECURRING if recurring else MAX_MAINTENANCE
    try:
        return parse_any_duration(text, maximum=limit, what=what)
    except DurationError as err:
        raise UsageError(str(err)) from None


def parse_time_of_day(text: str) -> time:
    """``HH:MM`` (UTC, 24-hour) into a time; UsageError otherwise."""
    m = _HHMM.match(text.strip())
    if m is None:
        raise UsageError(
            f"{_shown(text)} is not a time of day: use HH:MM in UTC (24-hour), e.g. `at 02:00`"
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_weekdays(text: str) -> tuple[str, ...]:
    """``mon,wed`` into ``("mon", "wed")`` (week order, no repeats); UsageError naming a bad day."""
    out: set[str] = set()
    for part in text.split(","):
        word = part.strip().lower()
        if not word:
            continue
        day = _DAY_NAMES.get(word)
        if day is None:
            close = difflib.get_close_matches(word, list(_DAY_NAMES), n=1, cutoff=0.6)
            hint = f" Did you mean `{_DAY_NAMES[close[0]]}`?" if close else ""
            raise UsageError(
                f"{_shown(part.strip())} is not a weekday.{hint} Use {', '.join(WEEKDAYS)}, "
                "comma-separated, e.g. `on mon,wed`"
            )
        out.add(day)
    if not out:
        raise UsageError(f"no weekday given: use {', '.join(WEEKDAYS)}, e.g. `on mon,wed`")
    return tuple(d for d in WEEKDAYS if d in out)


def parse_window_id(text: str) -> int:
    """A maintenance window id (a positive integer from `maintenance list`); UsageError otherwise."""
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) <= 0:
        raise UsageError(
            f"{_shown(text)} is not a maintenance window id: see the ids in `maintenance list`"
        )
    return int(text)


def _shown(text: str) -> str:
    """User text quoted for a message, cut at 30 characters."""
    return repr(text) if len(text) <= 30 else repr(text[:30])[:-1] + "…'"


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (difflib), best first."""
    pool = list(dict.fromkeys(known))
    out = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not out:  # a prefix or substring is a good guess too (``node-007`` -> ``gpu-node-007``)
        out = [k for k in pool if name and name in k][:n]
    return out
