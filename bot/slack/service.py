"""What the Slack listeners call: one method per user action, answering from stored state.

Each method returns a ``Reply`` (blocks, fallback text, public or not, optional images) built by
``bot/blocks``; listeners only ack, parse and send. Button effects are stored in the Repository
and redrawn in the alert message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx

from analysis.feedback import learn_allowances, unlearnt
from analysis.graph import blast_radius, build_graph, depends_on, gpus_behind, kind_of
from analysis.lifecycle import silence_matches
from analysis.maintenance import MaintenanceError, MaintenanceWindow
from analysis.types import GpuRef, GpuScore, Incident, RootCause, Topology
from bot.blocks import answers
from bot.blocks.common import escape, fit, plain_text, section
from bot.blocks.home import home_view
from bot.blocks.modal import silence_modal
from bot.blocks.models import AlertState, IncidentView, MaintenanceView, StatusView
from bot.lessons import Lessons
from bot.slack.commands import (
    ParsedCommand,
    UsageError,
    closest,
    parse,
    parse_duration,
    parse_incident_id,
)
from bot.slack.maintenance import maintenance_view
from bot.slack.notifier import SlackNotifier
from bot.slack.status import status_view_of
from storage.repository import IncidentRecord, MessageRef, Repository

logger = logging.getLogger(__name__)

Blocks = list[dict[str, Any]]
SILENCE_BUTTON = timedelta(hours=4)
GraphImage = Callable[[str, nx.DiGraph, Mapping[str, float]], bytes]


@dataclass(frozen=True)
class Reply:
    """An answer: blocks, fallback text, whether the channel sees it, images to share."""

    blocks: Blocks
    text: str
    public: bool = False
    images: Mapping[str, bytes] = field(default_factory=dict)


def _reply(blocks: Blocks, text: str, public: bool = False, **kw: Any) -> Reply:
    """Shorthand for a Reply; the fallback ``text`` is escaped like the blocks are."""
    return Reply(blocks=blocks, text=plain_text(text), public=public, **kw)


def problem_reply(problem: str) -> Reply:
    """What was wrong with a click or a submission, for the user who made it."""
    return _reply(fit([section(f":warning: {escape(problem)}")]), problem)


class SlackService:
    """The bot's answers and button effects, over the Repository and the dependency graph."""

    def __init__(
        self,
        repository: Repository,
        notifier: SlackNotifier,
        *,
        topology: Topology | None = None,
        admins: Sequence[str] = (),
        threshold: float = 0.9,
        data_source: str = "Prometheus",
        images: Callable[[int], Mapping[str, bytes]] | None = None,
        graph: Callable[[], nx.DiGraph] | None = None,
        graph_image: GraphImage | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        group_cache_seconds: float = 300.0,
        maintenance: Sequence[MaintenanceWindow] = (),
        clusters: Sequence[str] = (),
    ) -> None:
        """``admins``: user (U…/W…) or user group (S…) ids; empty = everyone may act.

        ``images`` maps a stored incident id to its PNGs (name -> bytes), e.g. the pipeline's
        ``images_for``; ``graph`` returns the current dependency graph (default: topology plus
        every GPU in the latest scores). ``maintenance``: the windows from the settings (those
        added with ``/gpu-risk maintenance add`` are in the Repository). ``clusters``: the
        clusters of a bot watching several (``/gpu-risk status`` lists each).
        """
        self.repo = repository
        self.notifier = notifier
        self.topology = topology
        self.admins = tuple(admins)
        self.threshold = threshold
        self.data_source = data_source
        self.images = images
        self._graph = graph
        self.graph_image = graph_image
        self.now = now
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._group_ttl = group_cache_seconds
        self._lock = threading.Lock()
        self.maintenance = tuple(maintenance)
        self.clusters = tuple(clusters)

    # ------------------------------------------------------------------ shared helpers
    def graph(self) -> nx.DiGraph:
        """The dependency graph: topology plus every GPU the latest scan scored."""
        if self._graph is not None:
            return self._graph()
        gpus = [GpuRef(g.node, g.gpu) for g in self.repo.top_gpus(limit=100_000)]
        for rec in self.repo.open_incidents():
            gpus.extend(GpuRef(g.node, g.gpu) for g in rec.incident.gpus)
        return build_graph(self.topology or Topology(racks=()), gpus)

    def is_admin(self, user: str) -> bool:
        """May ``user`` silence and acknowledge? (listed, or in a listed user group)."""
        if not self.admins or user in self.admins:
            return True
        return any(user in self._group_members(g) for g in self.admins if g.startswith("S"))

    def _group_members(self, group: str) -> frozenset[str]:
        """Members of a Slack user group, cached for a few minutes."""
        with self._lock:
            cached = self._groups.get(group)
            if cached and time.monotonic() - cached[0] < self._group_ttl:
                return cached[1]
        resp = self.notifier.client.usergroups_users_list(usergroup=group)
        members = frozenset(resp.get("users") or [])
        with self._lock:
            self._groups[group] = (time.monotonic(), members)
        return members

    def state_of(self, rec: IncidentRecord) -> AlertState:
        """The human state of a stored incident (ack, silence, false alarm, resolved)."""
        at = self.now()
        silence = next(
            (s for s in self.repo.active_silences(at) if silence_matches(rec.incident, s.target)),
            None,
        )
        fa = [f for f in self.repo.feedback(rec.id) if f.verdict == "false_alarm"]
        return AlertState(
            status=rec.status,
            acked_by=rec.acknowledged_by,
            acked_at=rec.acknowledged_at,
            silenced_until=silence.until if silence else None,
            silenced_by=silence.who if silence else None,
            silence_reason=silence.reason if silence else None,
            false_alarm_by=fa[-1].who if fa else None,
            false_alarm_at=fa[-1].at if fa else None,
            resolved_at=rec.resolved_at,
        )

    def view_of(self, rec: IncidentRecord) -> IncidentView:
        """An IncidentView of a stored incident."""
        ref = rec.message_ref
        return IncidentView(
            incident=rec.incident,
            state=self.state_of(rec),
            channel=ref.channel if ref else None,
            ts=ref.ts if ref else None,
        )

    def known_names(self, graph: nx.DiGraph) -> list[str]:
        """Every name a user may type: graph entities and open incidents' root causes."""
        names = [str(n) for n in graph.nodes]
        for rec in self.repo.open_incidents():
            names.extend([rec.incident.root_cause.id, rec.dedup_key])
        return names

    def status_view(self) -> StatusView:
        """The store's status as the builders want it (each cluster's, when several)."""
        at = self.now()
        return status_view_of(
            self.repo,
            data_source=self.data_source,
            now=at,
            maintenance=self.maintenance_views(at),
            clusters=self.clusters,
        )

    def maintenance_views(self, at: datetime) -> list[MaintenanceView]:
        """Every window active at ``at`` or still to come: the settings' and the stored ones."""
        views = [maintenance_view(w, at) for w in self.maintenance]
        views += [
            maintenance_view(r.window, at, id=r.id, who=r.who)
            for r in self.repo.maintenance_windows(at)
        ]
        return [v for v in views if v is not None]

    # ------------------------------------------------------------------ /gpu-risk
    def command(self, text: str, user: str) -> Reply:
        """Answer one ``/gpu-risk`` invocation from stored state."""
        try:
            cmd = parse(text)
        except UsageError as err:
            return _reply(answers.usage_blocks(str(err)), str(err))
        handler = getattr(self, f"_cmd_{cmd.name}")
        reply: Reply = handler(cmd, user)
        return reply

    def _cmd_top(self, cmd: ParsedCommand, user: str) -> Reply:
        views = [self.view_of(r) for r in self.repo.open_incidents()]
        blocks = answers.top_blocks(views, self.repo.top_gpus(limit=10))
        return _reply(blocks, f"{len(views)} open incident(s)", cmd.public)

    def _cmd_help(self, cmd: ParsedCommand, user: str) -> Reply:
        return _reply(answers.help_blocks(), "gpu-risk help", cmd.public)

    def _cmd_status(self, cmd: ParsedCommand, user: str) -> Reply:
        at = self.now()  # and what false-alarm verdicts taught, derived as the pipeline does
        verdicts = Lessons(self.repo).verdicts(at)
        blocks = answers.status_blocks(
            self.status_view(), learn_allowances(verdicts, at), unlearnt(verdicts, at)
        )
        return _reply(blocks, "gpu-risk status", cmd.public)

    def _unknown(self, name: str, graph: nx.DiGraph) -> Reply | None:
        """A reply naming the closest known names when ``name`` is unknown, else None."""
        if name in graph:
            return None
        known = self.known_names(graph)
        if name in known:
            return None
        return _reply(answers.unknown_blocks(name, closest(name, known)), f"unknown: {name}")

    def _cmd_why(self, cmd: ParsedCommand, user: str) -> Reply:
        graph = self.graph()
        unknown = self._unknown(cmd.target, graph)
        if unknown is not None:
            return unknown
        records = sorted(
            (r for r in self.repo.latest_for(cmd.target) if r.is_open),
            key=lambda r: (r.incident.root_cause.id != cmd.target, -r.score),
        )
        if not records:
            kind = kind_of(graph, cmd.target) if cmd.target in graph else "entity"
            scores = {g.key: g.score for g in self.repo.top_gpus(limit=100_000)}
            behind = gpus_behind(graph, cmd.target) if cmd.target in graph else []
            top = max((scores[k] for k in behind if k in scores), default=None)
            return _reply(
                answers.healthy_blocks(cmd.target, kind, top), "no open incident", cmd.public
            )
        view = self.view_of(records[0])
        images = dict(self.images(records[0].id)) if (self.images and cmd.public) else {}
        note = "" if cmd.public or not self.images else "Add `public` to post the images here."
        blocks = answers.why_blocks(view, self.notifier.options, images_note=note)
        return _reply(blocks, view.incident.title, cmd.public, images=images)

    def _cmd_graph(self, cmd: ParsedCommand, user: str) -> Reply:
        graph = self.graph()
        unknown = self._unknown(cmd.target, graph)
        if unknown is not None or cmd.target not in graph:
            return unknown or _reply(
                answers.usage_blocks("graph needs a node, rack or component"), ""
            )
        up: dict[str, list[str]] = {}
        for n in sorted(depends_on(graph, cmd.target)):
            up.setdefault(kind_of(graph, n), []).append(n)
        down: dict[str, list[str]] = {}
        for n in sorted(blast_radius(graph, cmd.target)):
            down.setdefault(kind_of(graph, n), []).append(n)
        scores = {g.key: g.score for g in self.repo.top_gpus(limit=100_000)}
        kind = kind_of(graph, cmd.target)
        blocks = answers.graph_blocks(cmd.target, kind, up, down, scores)
        images = {}
        if cmd.public and self.graph_image is not None:
            images[f"dependencies of {cmd.target}"] = self.graph_image(cmd.target, graph, scores)
        return _reply(blocks, f"dependencies of {cmd.target}", cmd.public, images=images)

    def _cmd_whatif(self, cmd: ParsedCommand, user: str) -> Reply:
        graph = self.graph()
        unknown = self._unknown(cmd.target, graph)
        if unknown is not None or cmd.target not in graph:
            return unknown or _reply(answers.usage_blocks("whatif needs a node or component"), "")
        below = blast_radius(graph, cmd.target)
        nodes = sorted(n for n in below | {cmd.target} if kind_of(graph, n) == "node")
        gpus = gpus_behind(graph, cmd.target)
        at_risk = sorted(
            {g.key for r in self.repo.open_incidents() for g in r.incident.gpus} & set(gpus)
        )
        kind = kind_of(graph, cmd.target)
        blocks = answers.whatif_blocks(cmd.target, kind, nodes, gpus, at_risk)
        return _reply(blocks, f"what if {cmd.target} goes down", cmd.public)

    def _cmd_silence(self, cmd: ParsedCommand, user: str) -> Reply:
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("silence alerts"), "not allowed")
        unknown = self._unknown(cmd.target, self.graph())
        if unknown is not None:
            return unknown
        at = self.now()
        until = at + (cmd.duration or SILENCE_BUTTON)
        self.repo.silence(cmd.target, until, user, cmd.reason, at)
        self._redraw_matching(cmd.target)
        blocks = answers.silenced_blocks(cmd.target, until, cmd.reason, user)
        return _reply(blocks, f"silenced {cmd.target}", cmd.public)

    def _cmd_unsilence(self, cmd: ParsedCommand, user: str) -> Reply:
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("lift silences"), "not allowed")
        lifted = self.repo.unsilence(cmd.target, self.now(), user)
        self._redraw_matching(cmd.target)
        return _reply(answers.unsilenced_blocks(cmd.target, lifted), "unsilenced", cmd.public)

    def _cmd_maintenance(self, cmd: ParsedCommand, user: str) -> Reply:
        action = cmd.args[0]
        at = self.now()
        if action == "list":
            views = self.maintenance_views(at)
            blocks = answers.maintenance_list_blocks(views)
            return _reply(blocks, f"{len(views)} maintenance window(s)", cmd.public)
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("plan maintenance windows"), "not allowed")
        if action == "remove":
            window_id = int(cmd.args[1])
            removed = self.repo.remove_maintenance(window_id, at, user)
            view = maintenance_view(removed.window, at, id=removed.id) if removed else None
            if removed is not None and view is None:  # over already: still say what it was
                view = MaintenanceView(removed.window.target, at, at, False, "", id=removed.id)
            blocks = answers.maintenance_removed_blocks(window_id, view)
            return _reply(blocks, f"maintenance window {window_id}", cmd.public)
        target = cmd.args[1]
        unknown = self._unknown(target, self.graph())
        if unknown is not None:
            return unknown
        assert cmd.duration is not None
        try:
            window = MaintenanceWindow(
                target=target,
                duration=cmd.duration,
                start=at if cmd.at is None else None,
                at=cmd.at,
                days=cmd.days,
                reason=cmd.reason,
            )
        except MaintenanceError as err:
            return _reply(answers.usage_blocks(str(err)), str(err))
        rec = self.repo.add_maintenance(window, user, at)
        added = maintenance_view(rec.window, at, id=rec.id, who=user)
        assert added is not None  # a new window is running or still to come
        blocks = answers.maintenance_added_blocks(added, user)
        return _reply(blocks, f"maintenance of {target}", cmd.public)

    def _redraw_matching(self, target: str) -> None:
        """Redraw the alerts of open incidents a silence target covers."""
        for rec in self.repo.open_incidents():
            if silence_matches(rec.incident, target):
                self.redraw(rec.id)

    # ------------------------------------------------------------------ buttons and modal
    def redraw(self, incident_id: int, ref: MessageRef | None = None) -> None:
        """Redraw an incident's alert message with its current stored state."""
        rec = self.repo.incident(incident_id)
        if rec is None:
            return
        target = ref or rec.message_ref
        if target is None:
            return
        self.notifier.edit(
            target, rec.incident, self.state_of(rec), record_id=rec.id, cluster=rec.cluster
        )

    def _record(self, incident_id: str) -> IncidentRecord:
        """The stored incident a button refers to; UsageError when the id is bad or unknown."""
        number = parse_incident_id(incident_id)
        rec = self.repo.incident(number)
        if rec is None:
            raise UsageError(f"incident {number} is not known here (any more)")
        return rec

    def acknowledge(self, incident_id: str, user: str, channel: str, ts: str) -> Reply | None:
        """Acknowledge button: store it and show who acknowledged when; refusal if not allowed."""
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("acknowledge alerts"), "not allowed")
        rec = self._record(incident_id)
        self.repo.acknowledge(rec.id, user, self.now())
        self.redraw(rec.id, _message_of(rec, channel, ts))
        return None

    def silence_incident(
        self,
        incident_id: str,
        user: str,
        channel: str,
        ts: str,
        *,
        duration: str = "4h",
        reason: str = "",
    ) -> Reply | None:
        """Silence button (4 h) or modal submission: store it and show it on the alert."""
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("silence alerts"), "not allowed")
        rec = self._record(incident_id)
        length = parse_duration(duration)
        at = self.now()
        self.repo.silence(rec.incident.root_cause.id, at + length, user, reason, at)
        self.redraw(rec.id, _message_of(rec, channel, ts))
        return None

    def silence_problem(self, incident_id: str, user: str, duration: str) -> str | None:
        """Why a silence from the modal cannot be applied (who, which incident, how long), or None."""
        if not self.is_admin(user):
            return "Only gpu-risk admins may silence alerts."
        try:
            self._record(incident_id)
            parse_duration(duration)
        except UsageError as err:
            return str(err)
        return None

    def silence_modal_view(
        self, incident_id: str, user: str, channel: str, ts: str
    ) -> Reply | dict[str, Any]:
        """The modal to open for "Silence…", or a refusal."""
        if not self.is_admin(user):
            return _reply(answers.refusal_blocks("silence alerts"), "not allowed")
        rec = self._record(incident_id)
        return silence_modal(str(rec.id), rec.incident.root_cause.id, channel, ts)

    def false_alarm(self, incident_id: str, user: str, channel: str, ts: str) -> None:
        """False alarm button: stored as feedback (the evaluation uses it), alert redrawn."""
        rec = self._record(incident_id)
        self.repo.record_feedback(rec.id, "false_alarm", user, self.now())
        self.redraw(rec.id, _message_of(rec, channel, ts))

    def share_images(self, channel: str, reply: Reply) -> None:
        """Upload a public answer's images into the channel it was asked in."""
        share_images_via(self.notifier.client, channel, reply)

    # ------------------------------------------------------------------ App Home
    def home(self) -> dict[str, Any]:
        """The App Home view: at-risk GPUs by rack, open incidents, last scan, data health."""
        by_rack: dict[str, list[GpuScore]] = {}
        for g in self.repo.top_gpus(limit=100_000):
            if g.score < self.threshold:
                continue
            rack = self.topology.rack_of(g.node) if self.topology else None
            by_rack.setdefault(rack.id if rack else "unracked", []).append(g)
        views = [self.view_of(r) for r in self.repo.open_incidents()]
        return home_view(by_rack, views, self.status_view())


def _message_of(rec: IncidentRecord, channel: str, ts: str) -> MessageRef | None:
    """The alert message to redraw: the stored one, else the one clicked (if both are given)."""
    if rec.message_ref is not None:
        return rec.message_ref
    return MessageRef(channel, ts) if channel and ts else None


def share_images_via(client: Any, channel: str, reply: Reply) -> None:
    """Upload a reply's images to ``channel`` (public answers only)."""
    client.files_upload_v2(
        file_uploads=[
            {"content": data, "filename": f"{name}.png", "title": name}
            for name, data in reply.images.items()
        ],
        channel=channel,
        initial_comment=reply.text,
    )


def render_dependency_picture(entity: str, graph: nx.DiGraph, scores: Mapping[str, float]) -> bytes:
    """PNG of the dependency picture around ``entity`` (analysis.plots, imported lazily)."""
    from analysis.plots import render_incident_graph

    behind = gpus_behind(graph, entity)
    gpus = tuple(
        GpuScore(ref.node, ref.gpu, float(scores.get(key, 0.0)))
        for key in behind
        for ref in (GpuRef.parse(key),)
    )
    kind = kind_of(graph, entity)
    picture = Incident(
        id=f"graph:{entity}",
        at=datetime.now(UTC),
        severity="info",
        score=max((g.score for g in gpus), default=0.0),
        root_cause=RootCause(entity, kind),  # type: ignore[arg-type]
        gpus=gpus,
    )
    return render_incident_graph(picture, graph, scores)
