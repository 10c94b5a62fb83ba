"""The series selector: PromQL label matchers added to the queries the reader sends.

Parsing ``GPU_RISK_SERIES_SELECTOR`` (``{cluster="a"}``) into matchers, and adding them to a
PromQL expression when it is a plain selector. No HTTP here: :mod:`storage.promql_client` applies
them to the queries it sends.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["Matcher", "SelectorError", "parse_selector", "with_matchers"]

# GPU_RISK_SERIES_SELECTOR ('{cluster="a"}') is a list of label matchers added to every metric
# selector the reader sends (DCGM, node, up, the XID counter, label discovery), and to a
# topology component's PromQL when that PromQL is a plain selector (``name`` or ``name{...}``);
# any other PromQL (functions, operators) is sent as written: put the matchers in it yourself.
# A matcher on a label the selector already constrains is not added (the written one wins).

_MATCHER = re.compile(
    r"""\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
)
_PLAIN = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.DOTALL)

Matcher = tuple[str, str, str]


class SelectorError(ValueError):
    """A series selector is not a list of PromQL label matchers."""


def _matchers(inner: str) -> list[Matcher]:
    """Parse ``a="x", b=~"y"`` (no braces) into (label, op, double-quoted value); raise ValueError."""
    out: list[Matcher] = []
    pos, text = 0, inner.strip().rstrip(",")
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if m is None:
            raise SelectorError(f"cannot read a label matcher at {text[pos : pos + 40]!r}")
        value = m.group(3)
        if value.startswith("'"):
            value = '"' + value[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
        out.append((m.group(1), m.group(2), value))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise SelectorError(f"expected ',' between matchers at {text[pos : pos + 40]!r}")
            pos += 1
    return out


def parse_selector(text: str | None) -> tuple[Matcher, ...]:
    """Parse a series selector such as ``{cluster="a", env=~"prod|stage"}`` (braces optional).

    Returns the matchers as (label, operator, double-quoted value); empty for None or ``{}``.
    Raises SelectorError (a ValueError) with what is wrong.
    """
    if text is None or not text.strip():
        return ()
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise SelectorError(f"{text!r}: a selector in braces must end with '}}'")
        body = body[1:-1]
    try:
        return tuple(_matchers(body))
    except SelectorError as exc:
        raise SelectorError(
            f'{text!r} is not a list of label matchers ({exc}): write e.g. {{cluster="a"}}'
        ) from None


def with_matchers(promql: str, matchers: Sequence[Matcher]) -> tuple[str, bool]:
    """Add ``matchers`` to ``promql`` when it is a plain selector; return (query, applied).

    ``metric`` becomes ``metric{m}``, ``metric{a="x"}`` becomes ``metric{a="x",m}``; a matcher
    on a label the selector already names is left out. Anything else is returned unchanged with
    ``applied`` False (and True when there is nothing to add).
    """
    if not matchers:
        return promql, True
    m = _PLAIN.match(promql)
    if m is None or (m.group(1) is None and m.group(2) is None):
        return promql, False
    try:
        own = _matchers(m.group(2) or "")
    except SelectorError:
        return promql, False
    named = {label for label, _, _ in own}
    added = [f"{label}{op}{value}" for label, op, value in matchers if label not in named]
    parts = [f"{label}{op}{value}" for label, op, value in own] + added
    return f"{m.group(1) or ''}{{{', '.join(parts)}}}", True
