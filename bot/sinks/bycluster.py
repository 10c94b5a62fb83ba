"""One bot, several clusters: each notification goes to the sink of the cluster it is about."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bot.sinks.base import DataSourceNote, Notification, Sink
from bot.sinks.fanout import FanOut
from storage.repository import MessageRef


class ByCluster:
    """A sink that hands each row to its cluster's sink (``note.cluster``): that cluster's Slack
    channels and name, its Alertmanager labels. A row of a cluster no longer configured goes to
    ``default``, as do free-standing messages (the daily digest)."""

    def __init__(self, sinks: Mapping[str, Sink], default: Sink) -> None:
        """``sinks``: cluster key -> sink; ``default`` for the rest."""
        self.by_cluster = dict(sinks)
        self.default = default

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Every sink, the default first."""
        return (self.default, *(s for s in self.by_cluster.values() if s is not self.default))

    def of(self, cluster: str) -> Sink:
        """The sink of ``cluster``."""
        return self.by_cluster.get(cluster, self.default)

    def post(self, note: Notification) -> MessageRef | None:
        """Post the alert through its cluster's sink."""
        return self.of(note.cluster).post(note)

    def update(self, note: Notification) -> MessageRef | None:
        """Say it got worse through its cluster's sink."""
        return self.of(note.cluster).update(note)

    def improve(self, note: Notification) -> MessageRef | None:
        """Say it got better through its cluster's sink."""
        return self.of(note.cluster).improve(note)

    def resolve(self, note: Notification) -> MessageRef | None:
        """Say it is resolved through its cluster's sink."""
        return self.of(note.cluster).resolve(note)

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Say the cluster's data source changed through its sink."""
        return self.of(note.cluster).data_source(note)

    def post_text(self, text: str) -> None:
        """A free-standing message (the digest, about every cluster) goes to the default."""
        self.default.post_text(text)


def leaves(sink: Sink) -> Iterator[Sink]:
    """Every sink inside ``sink`` (through ``FanOut`` and ``ByCluster``), each once."""
    seen: set[int] = set()
    stack = [sink]
    while stack:
        each = stack.pop(0)
        if id(each) in seen:
            continue
        seen.add(id(each))
        if isinstance(each, FanOut | ByCluster):
            stack.extend(each.sinks)
        else:
            yield each
