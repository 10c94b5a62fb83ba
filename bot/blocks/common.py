"""Slack limits, truncation with a count, label allowlisting and shared small blocks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

MAX_BLOCKS = 50  # per message (views allow 100; we keep one limit)
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_MESSAGE_TEXT = 4000  # fallback ``text``: Slack truncates at 40,000; notifications show ~4k

ACTION_ACK = "gpu_risk_ack"
ACTION_SILENCE_4H = "gpu_risk_silence_4h"
ACTION_SILENCE_MODAL = "gpu_risk_silence_open"
ACTION_FALSE_ALARM = "gpu_risk_false_alarm"
ACTIONS_BLOCK_ID = "gpu_risk_alert_actions"
SILENCE_CALLBACK_ID = "gpu_risk_silence_modal"
ALL_ACTION_IDS: tuple[str, ...] = (
    ACTION_ACK,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    ACTION_FALSE_ALARM,
)
ALL_CALLBACK_IDS: tuple[str, ...] = (SILENCE_CALLBACK_ID,)

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":white_circle:",
}

_LABEL_PAIR = re.compile(r'(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)(=~?|!=)"([^"]*)"')


@dataclass(frozen=True)
class BlockOptions:
    """What every builder needs to know beyond the incident: links and the label allowlist."""

    grafana_url: str | None = None
    prometheus_ui_url: str | None = None
    label_allowlist: frozenset[str] = field(
        default_factory=lambda: frozenset({"Hostname", "gpu", "modelName", "UUID", "pci_bus_id"})
    )
    max_gpus_shown: int = 8


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    room = limit - len(f"… (+{len(text)} chars)")
    if room <= 0:
        return text[:limit]
    return text[:room] + f"… (+{len(text) - room} chars)"


def collapse(items: Sequence[str], shown: int, *, sep: str = ", ") -> str:
    """Join the first ``shown`` items and count the rest (``a, b, c and 13 more``)."""
    if len(items) <= shown:
        return sep.join(items)
    return f"{sep.join(items[:shown])} and {len(items) - shown} more"


def redact_labels(text: str, allowlist: Iterable[str]) -> str:
    """Hide the values of ``label="value"`` pairs whose label is not allowlisted."""
    allowed = set(allowlist)

    def _sub(m: re.Match[str]) -> str:
        """Keep allowlisted pairs; hide the rest."""
        return m.group(0) if m.group(1) in allowed else f'{m.group(1)}{m.group(2)}"[hidden]"'

    return _LABEL_PAIR.sub(_sub, clip(text, 2 * MAX_SECTION_TEXT))


def filter_labels(labels: Mapping[str, str], allowlist: Iterable[str]) -> dict[str, str]:
    """Return only the allowlisted labels."""
    allowed = set(allowlist)
    return {k: v for k, v in labels.items() if k in allowed}


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str) -> HeaderBlock:
    """A header block, clipped to 150 characters."""
    return HeaderBlock(text=PlainTextObject(text=clip(text, MAX_HEADER_TEXT), emoji=True))


def section(text: str, *, fields: Sequence[str] = (), block_id: str | None = None) -> SectionBlock:
    """A mrkdwn section, text clipped to 3,000 characters and at most 10 fields."""
    fs = [MarkdownTextObject(text=clip(f, MAX_FIELD_TEXT)) for f in fields[:MAX_FIELDS]]
    if len(fields) > MAX_FIELDS:
        fs[-1] = MarkdownTextObject(text=f"… and {len(fields) - MAX_FIELDS + 1} more")
    return SectionBlock(
        text=MarkdownTextObject(text=clip(text or " ", MAX_SECTION_TEXT)),
        fields=fs or None,
        block_id=block_id,
    )


def context(*texts: str) -> ContextBlock:
    """A context block of mrkdwn texts (at most 10 elements, each clipped)."""
    items = [t for t in texts if t][:MAX_CONTEXT_ELEMENTS] or [" "]
    return ContextBlock(
        elements=[MarkdownTextObject(text=clip(t, MAX_SECTION_TEXT)) for t in items]
    )


def fit(blocks: Sequence[Block | dict[str, Any]], limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """Serialise blocks (validating nested elements) and keep at most ``limit``, counting the rest."""
    dicts = [b if isinstance(b, dict) else b.to_dict() for b in blocks]
    if len(dicts) <= limit:
        return dicts
    dropped = len(dicts) - (limit - 1)
    # keep a trailing actions block (the buttons) when there is one
    tail = [dicts[-1]] if dicts[-1].get("type") == "actions" else []
    head = dicts[: limit - 1 - len(tail)]
    note = context(f"… {dropped} more blocks not shown").to_dict()
    return [*head, note, *tail]


def utc_text(ts: datetime | None) -> str:
    """A time as UTC text: ``2026-11-22 10:00 UTC`` (``never`` for None)."""
    if ts is None:
        return "never"
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def fmt_time(ts: datetime | None) -> str:
    """A time for a Slack message: a date token each reader sees in their own time zone.

    ``<!date^1795341600^{date_short_pretty} {time}|2026-11-22 10:00 UTC>``; the UTC text after
    ``|`` is what notifications, old clients and the terminal rendering show. A naive time is
    taken as UTC. ``never`` for None.
    """
    if ts is None:
        return "never"
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return f"<!date^{int(aware.timestamp())}^{{date_short_pretty}} {{time}}|{utc_text(ts)}>"


def fmt_age(seconds: float | None) -> str:
    """Format an age for people: ``3 min``, ``2 h``, ``4 d``."""
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def plain_text(text: str) -> str:
    """The notification fallback ``text``: links and mentions as words, the rest escaped.

    ``<url|label>`` becomes ``label`` and ``<@U1>`` ``@U1``; every other ``&``, ``<`` and ``>`` is
    escaped, so ``<!channel>``, ``<!here>`` or a user's ``<@U…>`` in a name never pings anyone.
    """
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2", text)
    text = re.sub(r"<@([A-Z0-9]+)>", r"@\1", text)
    return clip(escape(text), MAX_MESSAGE_TEXT)


def mention(user: str) -> str:
    """``<@user>`` for a Slack user id; anything else is shown escaped and pings nobody."""
    if re.fullmatch(r"[UW][A-Z0-9]{1,20}", user):
        return f"<@{user}>"
    return escape(user)
