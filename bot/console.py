"""Compatibility names for the terminal notifier, which now lives in ``bot.sinks.console``.

``ConsoleNotifier`` is ``bot.sinks.console.ConsoleSink`` (a ``bot.sinks.Sink``; its ``send``
method still takes an outbox row, for callers that pass a ``Send`` callable).
"""

from __future__ import annotations

from bot.sinks.console import CHANNEL, THREAD_KINDS, ConsoleSink, read_log

ConsoleNotifier = ConsoleSink

__all__ = ["CHANNEL", "THREAD_KINDS", "ConsoleNotifier", "ConsoleSink", "read_log"]
