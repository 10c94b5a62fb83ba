"""A readable terminal rendering of Block Kit, "as a Slack user would see it" (for the demo)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_DATE_TOKEN = re.compile(r"<!date\^[0-9]+\^[^|>]*\|([^>]*)>")
_BOLD = "\033[1m"
_RESET = "\033[0m"


def mrkdwn_to_text(text: str, *, markup: bool = True, color: bool = False) -> str:
    """Turn Slack mrkdwn into terminal text: links, mentions, emoji, escapes.

    ``markup=False`` also drops the ``*bold*``, ``_italic_`` and backtick markers the way Slack
    does when it displays them (bold becomes ANSI bold with ``color``), and shows only a link's
    text.
    """
    text = _DATE_TOKEN.sub(r"\1", text)  # a Slack date token: its UTC fallback text
    if not markup:
        text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2", text)
        bold = (_BOLD, _RESET) if color else ("", "")
        text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", rf"{bold[0]}\1{bold[1]}", text)
        text = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"\1", text)
        text = text.replace("`", "")
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", r"@\1", text)
    text = re.sub(r"<#([A-Z0-9]+)(\|[^>]*)?>", r"#\1", text)
    text = re.sub(r":([a-z0-9_+-]+):", lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_EMOJI = {
    "red_circle": "(!!)",
    "large_orange_circle": "(!)",
    "white_circle": "(i)",
    "large_green_circle": "(ok)",
    "white_check_mark": "[ok]",
    "eyes": "[ack]",
    "zzz": "[zz]",
    "no_entry_sign": "[x]",
    "bulb": "hint:",
    "arrow_up": "^",
    "warning": "/!\\",
    "mag": "?",
    "lock": "[locked]",
    "bell": "[bell]",
    "x": "[x]",
}


def _text_of_obj(obj: Any, markup: bool = True, color: bool = False) -> str:
    """The text of a text object (plain_text or mrkdwn), or ''."""
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    if obj.get("type") == "plain_text":
        return text
    return mrkdwn_to_text(text, markup=markup, color=color)


def render_text(
    blocks: Sequence[dict[str, Any]],
    *,
    color: bool = False,
    markup: bool = False,
    width: int = 78,
) -> str:
    """Render blocks as a Slack user sees them: bold header, sections, fields, context, buttons
    as ``[ Acknowledge ]``. ``markup=True`` keeps the mrkdwn markers and link URLs (debugging).
    """
    out: list[str] = []

    def _text_of(obj: Any) -> str:
        """Text of a text object with this call's options."""
        return _text_of_obj(obj, markup, color)

    for b in blocks:
        kind = b.get("type")
        if kind == "header":
            title = _text_of(b.get("text"))
            out.append(f"{_BOLD}{title}{_RESET}" if color else title)
            if not color:
                out.append("=" * min(width, len(title)))
        elif kind == "section":
            if b.get("text") and _text_of(b["text"]).strip():
                out.append(_text_of(b["text"]))
            fields = [_text_of(f) for f in b.get("fields") or []]
            for i in range(0, len(fields), 2):
                pair = [f.replace("\n", ": ", 1) for f in fields[i : i + 2]]
                out.append("  ".join(p.ljust(width // 2 - 1) for p in pair).rstrip())
            acc = b.get("accessory")
            if acc and acc.get("type") == "button":
                out.append(f"[ {_text_of(acc.get('text'))} ]")
        elif kind == "context":
            parts = [
                _text_of(e)
                if e.get("type") in ("mrkdwn", "plain_text")
                else f"[{e.get('alt_text', 'image')}]"
                for e in b.get("elements", [])
            ]
            out.append("  " + " | ".join(p for p in parts if p.strip()))
        elif kind == "actions":
            buttons = [f"[ {_text_of(e.get('text'))} ]" for e in b.get("elements", [])]
            out.append(" ".join(buttons))
        elif kind == "divider":
            out.append("-" * width)
        elif kind == "image":
            out.append(f"[image: {b.get('alt_text', '')}]")
        elif kind == "input":
            out.append(f"{_text_of(b.get('label'))}: [______]")
        else:
            out.append(f"[{kind}]")
    return "\n".join(out)
