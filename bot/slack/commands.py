"""Parsing of ``/gpu-risk`` text: subcommand, arguments, the ``public`` modifier, durations."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
    "status",
    "help",
)
MAX_SILENCE = timedelta(days=30)
MAX_INCIDENT_ID = 2**63 - 1  # the store's BIGINT


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


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name`` (difflib), best first."""
    pool = list(dict.fromkeys(known))
    out = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if not out:  # a prefix or substring is a good guess too (``node-007`` -> ``gpu-node-007``)
        out = [k for k in pool if name and name in k][:n]
    return out
