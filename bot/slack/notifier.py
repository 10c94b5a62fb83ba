"""SlackNotifier: posts alerts, uploads their images into the thread, edits and replies.

Routing: ``routes`` maps a rack id or a severity to a channel (rack first: the team that owns
the rack; then severity), else ``default_channel``. A bot watching several clusters has one
notifier per cluster (:meth:`SlackNotifier.for_cluster`: its channels, its topology, its name in
every message), sharing the client and the per-channel pacing. Sends are paced per channel (Slack allows
about one message per second per channel); 429s, 5xx and connection errors are retried by the
client's retry handlers (``bot.slack.client.make_client``). A send that still fails raises
``SlackApiError``; the outbox keeps the notification and retries later.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk import WebClient

from analysis.types import GpuRef, Incident, Topology
from bot.blocks.alert import (
    alert_blocks,
    alert_text,
    better_reply_blocks,
    images_comment,
    resolved_reply_blocks,
    worse_reply_blocks,
    worse_reply_text,
)
from bot.blocks.common import BlockOptions, fit, plain_text, section
from bot.blocks.models import AlertState
from storage.repository import MessageRef

logger = logging.getLogger(__name__)

Blocks = list[dict[str, Any]]
METADATA_EVENT = "gpu_risk_alert"
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class ChannelError(ValueError):
    """A configured channel cannot be used; the message says which and what to do."""


class SlackNotifier:
    """Turns incidents into Slack messages: post, update, reply, resolve."""

    def __init__(
        self,
        client: WebClient,
        routes: Mapping[str, str],
        default_channel: str | None,
        *,
        options: BlockOptions | None = None,
        topology: Topology | None = None,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cluster: str = "",
    ) -> None:
        """``client`` from ``make_client``; ``min_interval`` seconds between sends per channel;
        ``cluster``: the cluster named in its messages (empty: none)."""
        self.client = client
        self.routes = dict(routes)
        self.default_channel = default_channel
        self.options = options or BlockOptions()
        self.topology = topology
        self.min_interval = min_interval
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.cluster = cluster

    def for_cluster(
        self,
        cluster: str,
        routes: Mapping[str, str],
        default_channel: str | None,
        topology: Topology | None,
    ) -> SlackNotifier:
        """A notifier for one cluster: its channels and topology, its name in every message;
        the same client, options and per-channel pacing as this one."""
        other = SlackNotifier(
            self.client,
            routes,
            default_channel,
            options=self.options,
            topology=topology,
            min_interval=self.min_interval,
            clock=self._clock,
            sleep=self._sleep,
            cluster=cluster,
        )
        other._last, other._lock = self._last, self._lock  # one pace per channel, shared
        return other

    # ------------------------------------------------------------------ routing and pacing
    def resolve_channels(self) -> dict[str, str]:
        """Replace channel names (``#gpu-alerts`` or ``gpu-alerts``) in the default channel and
        the routes by their ids; return name -> id. Ids are kept as they are.

        Slack's APIs that read a channel (``conversations.history`` after a crash) need its id.
        Raise ``ChannelError`` when a name is unknown to the bot or the bot is not a member.
        """
        wanted = {
            c.lstrip("#")
            for c in (self.default_channel, *self.routes.values())
            if c and not CHANNEL_ID.match(c)
        }
        if not wanted:
            return {}
        found: dict[str, tuple[str, bool]] = {}
        cursor: str | None = None
        while True:
            resp = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in resp.get("channels") or []:
                found[str(ch["name"])] = (str(ch["id"]), bool(ch.get("is_member")))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None or wanted <= set(found):
                break
        missing = sorted(wanted - set(found))
        if missing:
            raise ChannelError(
                f"Slack channel(s) {', '.join('#' + m for m in missing)} not found: check "
                "GPU_RISK_SLACK_CHANNEL / GPU_RISK_SLACK_ROUTES (a private channel is visible "
                "only once the bot is invited: /invite @gpu-risk)"
            )
        outside = sorted(n for n in wanted if not found[n][1])
        if outside:
            raise ChannelError(
                f"the bot is not a member of {', '.join('#' + n for n in outside)}: invite it "
                "there (/invite @gpu-risk) or change GPU_RISK_SLACK_CHANNEL / GPU_RISK_SLACK_ROUTES"
            )
        ids = {n: found[n][0] for n in sorted(wanted)}

        def as_id(channel: str) -> str:
            """The id of a configured channel."""
            return ids.get(channel.lstrip("#"), channel)

        if self.default_channel:
            self.default_channel = as_id(self.default_channel)
        self.routes = {k: as_id(v) for k, v in self.routes.items()}
        logger.info("Slack channels resolved: %s",
                    ", ".join(f"#{n}={i}" for n, i in ids.items()))  # fmt: skip
        return ids

    def rack_of(self, incident: Incident) -> str | None:
        """The rack an incident belongs to (its root cause, or its GPUs' rack), if known."""
        if incident.root_cause.kind == "rack":
            return incident.root_cause.id
        if self.topology is None:
            return None
        if incident.root_cause.kind == "node":
            node = incident.root_cause.id
        elif incident.root_cause.kind == "gpu":
            node = GpuRef.parse(incident.root_cause.id).node
        else:
            racks = {r.id for g in incident.gpus if (r := self.topology.rack_of(g.node))}
            return racks.pop() if len(racks) == 1 else None
        rack = self.topology.rack_of(node)
        return rack.id if rack else None

    def channel_for(self, incident: Incident) -> str:
        """The channel for an incident: route by rack, then severity, else the default."""
        rack = self.rack_of(incident)
        for key in (rack, incident.severity):
            if key and key in self.routes:
                return self.routes[key]
        if self.default_channel:
            return self.default_channel
        raise ValueError(
            "no Slack channel for this incident: set GPU_RISK_SLACK_CHANNEL or GPU_RISK_SLACK_ROUTES"
        )

    def _pace(self, channel: str) -> None:
        """Wait so that sends to one channel are at least ``min_interval`` apart."""
        with self._lock:
            now = self._clock()
            wait = self._last.get(channel, -1e18) + self.min_interval - now
            self._last[channel] = now + max(0.0, wait)
        if wait > 0:
            self._sleep(wait)

    # ------------------------------------------------------------------ sends
    def post(
        self,
        incident: Incident,
        images: Mapping[str, bytes] | None = None,
        *,
        record_id: int | str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> MessageRef:
        """Post the alert, then upload ``images`` (name -> PNG bytes) into its thread.

        ``idempotency_key`` is stored in the message's metadata so that ``find_posted`` can
        recognise this post after a crash between Slack's answer and the outbox commit.
        """
        target = channel or self.channel_for(incident)
        self._pace(target)
        metadata = (
            {"event_type": METADATA_EVENT, "event_payload": {"idempotency_key": idempotency_key}}
            if idempotency_key
            else None
        )
        resp = self.client.chat_postMessage(
            channel=target,
            text=alert_text(incident, cluster=self.cluster),
            blocks=alert_blocks(
                incident, None, self.options, record_id=record_id, cluster=self.cluster
            ),
            unfurl_links=False,
            metadata=metadata,
        )
        ref = MessageRef(
            channel=str(resp["channel"]), ts=str(resp["ts"]), thread_ts=str(resp["ts"])
        )
        if images:
            self.upload_images(ref, incident, images)
        return ref

    def find_posted(self, channel: str, idempotency_key: str, since: datetime) -> MessageRef | None:
        """Find an alert this bot already posted with ``idempotency_key`` (since ``since``)."""
        resp = self.client.conversations_history(
            channel=channel,
            oldest=f"{since.timestamp() - 60:.6f}",
            include_all_metadata=True,
            limit=200,
        )
        for msg in resp.get("messages") or []:
            meta = msg.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT and payload.get("idempotency_key") == (
                idempotency_key
            ):
                return MessageRef(channel=channel, ts=str(msg["ts"]), thread_ts=str(msg["ts"]))
        return None

    def upload_images(
        self, ref: MessageRef, incident: Incident, images: Mapping[str, bytes]
    ) -> None:
        """Upload PNGs from bytes into the alert's thread, in one files_upload_v2 call."""
        self._pace(ref.channel)
        self.client.files_upload_v2(
            file_uploads=[
                {"content": data, "filename": f"{_slug(name)}.png", "title": name}
                for name, data in images.items()
            ],
            channel=ref.channel,
            thread_ts=ref.ts,
            initial_comment=images_comment(incident, list(images)),
        )

    def edit(
        self,
        ref: MessageRef,
        incident: Incident,
        state: AlertState | None = None,
        *,
        record_id: int | str | None = None,
        cluster: str = "",
    ) -> None:
        """Redraw the original alert with the incident's current data and people's actions
        (``cluster``: the incident's, else this notifier's)."""
        shown = cluster or self.cluster
        self._pace(ref.channel)
        self.client.chat_update(
            channel=ref.channel,
            ts=ref.ts,
            text=alert_text(incident, state, cluster=shown),
            blocks=alert_blocks(incident, state, self.options, record_id=record_id, cluster=shown),
        )

    def update(
        self,
        ref: MessageRef,
        incident: Incident,
        previous: Incident | None = None,
        *,
        state: AlertState | None = None,
        record_id: int | str | None = None,
    ) -> str:
        """Same incident, worse: edit the original and reply in its thread; return the reply ts."""
        self.edit(ref, incident, state, record_id=record_id)
        before = previous or incident
        return self.reply(
            ref,
            worse_reply_text(before, incident),
            worse_reply_blocks(before, incident, self.options),
        )

    def improve(
        self,
        ref: MessageRef,
        incident: Incident,
        previous: Incident | None = None,
        *,
        state: AlertState | None = None,
        record_id: int | str | None = None,
    ) -> str:
        """Same incident, better but still open: edit the original, say so in the thread."""
        self.edit(ref, incident, state, record_id=record_id)
        return self.reply(ref, f"Better: {incident.title}", better_reply_blocks(previous, incident))

    def resolve(
        self,
        ref: MessageRef,
        incident: Incident,
        *,
        at: datetime | None = None,
        state: AlertState | None = None,
        reason: str = "",
        merged_into: str = "",
    ) -> str:
        """Edit the original to resolved (no buttons) and say so in the thread (merged into
        ``merged_into``, the broader incident's title, when one took its GPUs)."""
        base = state or AlertState()
        resolved = AlertState(
            **{
                **base.__dict__,
                "status": "resolved",
                "resolved_at": at or incident.at,
                "merged_into": merged_into or None,
            }
        )
        self.edit(ref, incident, resolved)
        done = "Merged" if merged_into else "Resolved"
        return self.reply(
            ref,
            f"{done}: {incident.title}",
            resolved_reply_blocks(incident, reason, merged_into),
        )

    def reply(self, ref: MessageRef, text: str, blocks: Blocks | None = None) -> str:
        """Reply in the alert's thread; return the reply's ts."""
        self._pace(ref.channel)
        resp = self.client.chat_postMessage(
            channel=ref.channel,
            thread_ts=ref.thread_ts or ref.ts,
            text=plain_text(text),
            blocks=blocks,
            unfurl_links=False,
        )
        return str(resp["ts"])

    def post_text(self, text: str, *, channel: str | None = None) -> str:
        """Post a message (data source degraded/recovered, digests); return its ts.

        ``text`` is mrkdwn built by gpu-risk (names from the metrics escaped by its builder).
        """
        target = channel or self.default_channel or next(iter(self.routes.values()), None)
        if not target:
            raise ValueError("no Slack channel configured: set GPU_RISK_SLACK_CHANNEL")
        self._pace(target)
        # as a section, so the digest's mentions and date tokens work; the fallback is plain
        resp = self.client.chat_postMessage(
            channel=target, text=plain_text(text), blocks=fit([section(text)])
        )
        return str(resp["ts"])


def _slug(name: str) -> str:
    """A file-name-safe version of an image name."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "image"
