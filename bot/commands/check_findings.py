"""One line of ``gpu-risk check``: works (✓), broken (✗) or worth knowing (!).

Shared by the command (:mod:`bot.commands.check`) and its live checks (Prometheus, Slack,
Alertmanager); the text is masked (credentials) when printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from storage.redact import redact_text


@dataclass(frozen=True)
class Finding:
    """One line of the check: ``ok`` True (✓), False (✗) or None (! advisory)."""

    ok: bool | None
    text: str

    def line(self) -> str:
        """The printed line."""
        mark = {True: "✓", False: "✗", None: "!"}[self.ok]
        return f"{mark} {redact_text(self.text)}"


def lines(findings: Iterable[Finding]) -> list[str]:
    """The printed lines of findings (tests and callers)."""
    return [f.line() for f in findings]
