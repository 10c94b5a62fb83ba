"""One bot, several clusters: the clusters file (``GPU_RISK_CLUSTERS``) and each cluster's settings.

The file lists the clusters; every key but ``name`` is optional and defaults to the global
setting of the same name (so a shared Prometheus needs only a selector or a tenant header per
cluster)::

    clusters:
      - name: a                                   # [A-Za-z0-9._-], at most 48 characters
        series_selector: '{cluster="a"}'
        topology: topology-a.yaml                 # relative to this file
        slack_channel: C0ALERTSA
        alertmanager_labels: {team: ml-a}
      - name: b
        prometheus_url: http://mimir.example:8080/prometheus
        prometheus_headers: {X-Scope-OrgID: tenant-b}
        slack_channel: C0ALERTSB

Keys: ``prometheus_url``, ``series_selector``, ``prometheus_headers``, ``topology``,
``topology_labels``, ``slack_channel``, ``slack_routes``, ``alertmanager_labels``. A cluster with
its own ``slack_channel`` and no ``slack_routes`` sends every alert to that channel (the global
routes are not its). The file is read
with the other settings (once, at start-up) and every problem is one line naming the file, the
cluster and the key. Without it the bot watches one cluster exactly as before
(:func:`clusters_of` returns that one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

if TYPE_CHECKING:
    from bot.config import Settings

#: What a cluster may be called: it names a directory of models, a label value, a state key.
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,46}[A-Za-z0-9])?$")
#: Alertmanager label names gpu-risk sets itself (a cluster's extra labels may not replace them).
RESERVED_LABELS = frozenset(
    {"alertname", "severity", "root_cause", "root_kind", "Hostname", "node", "gpu", "rack",
     "cluster"}
)  # fmt: skip
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClusterSpec(BaseModel):
    """One entry of the clusters file; None means "the global setting"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    prometheus_url: str | None = None
    series_selector: str | None = None
    prometheus_headers: dict[str, str] | None = None
    topology: Path | None = None
    topology_labels: dict[str, str] | None = None
    slack_channel: str | None = None
    slack_routes: dict[str, str] | None = None
    alertmanager_labels: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        """Letters, digits, ``.``, ``_`` and ``-``, at most 48 characters."""
        if not CLUSTER_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a cluster name: use letters, digits, '.', '_' and '-' "
                "(at most 48 characters, starting and ending with a letter or digit)"
            )
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        """http:// or https://."""
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value

    @field_validator("series_selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        """PromQL label matchers."""
        from storage.metrics import parse_selector

        parse_selector(value)
        return value

    @field_validator("topology_labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """Known roles, each ``metric:label``."""
        if value is not None:
            from storage.discovery import parse_label_sources

            parse_label_sources(value)
        return value

    @field_validator("alertmanager_labels")
    @classmethod
    def _alert_labels(cls, value: dict[str, str]) -> dict[str, str]:
        """Valid label names that gpu-risk does not set itself."""
        for name in value:
            if not LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*)")
            if name in RESERVED_LABELS:
                raise ValueError(f"{name!r} is set by gpu-risk itself; choose another label")
        return value


def read_clusters(value: Any) -> tuple[ClusterSpec, ...]:
    """The clusters of ``GPU_RISK_CLUSTERS``: a YAML file's path (``clusters:`` list, or a bare
    list), or the list itself (e.g. inline in a ``--config`` file).

    Raise ``ValueError`` with one line per problem, naming the file, the cluster and the key;
    relative topology paths are read from the file's directory.
    """
    if value is None or value in ("", (), []):
        return ()
    where, base = "clusters", None
    if isinstance(value, str | Path):
        path = Path(value).expanduser()
        where, base = str(path), path.parent
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(
                f"cannot read the clusters file {path}: {exc.strerror or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
        value = doc.get("clusters") if isinstance(doc, dict) else doc
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not value:
        raise ValueError(
            f"{where}: expected a non-empty list of clusters (clusters: [{{name: a}}])"
        )
    specs, problems = [], []
    for i, raw in enumerate(value):
        label = f"{where}: clusters[{i}]"
        if isinstance(raw, ClusterSpec):
            specs.append(raw)
            continue
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']})"
        try:
            spec = ClusterSpec.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "entry"
                problems.append(f"{label}.{key}: {_message(err)}")
            continue
        if base is not None and spec.topology is not None and not spec.topology.is_absolute():
            spec = spec.model_copy(update={"topology": base / spec.topology})
        specs.append(spec)
    names = [s.name for s in specs]
    problems += [f"{where}: cluster {n!r} is listed twice" for n in sorted(set(names))
                 if names.count(n) > 1]  # fmt: skip
    if problems:
        raise ValueError("\n".join(problems))
    return tuple(specs)


def _message(err: Any) -> str:
    """A pydantic error's message without its ``Value error, `` prefix."""
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


@dataclass(frozen=True)
class Cluster:
    """One watched cluster: its name, its key in the state store and its own settings.

    ``key`` is ``""`` for the one cluster of a bot without a clusters file (its store is read
    whole, as before), else the name. ``settings`` are the global settings with the cluster's
    values in place (``settings.cluster`` is its name). ``labels``: extra Alertmanager labels.
    """

    name: str
    key: str
    settings: Settings
    labels: Mapping[str, str] = field(default_factory=dict)


def clusters_of(settings: Settings) -> tuple[Cluster, ...]:
    """Every cluster the bot watches: those of the clusters file, else the one of the settings."""
    if not settings.clusters:
        return (Cluster(name=settings.cluster, key="", settings=settings),)
    out = []
    for spec in settings.clusters:
        given = spec.model_dump(exclude={"name", "alertmanager_labels"}, exclude_none=True)
        if spec.slack_channel is not None and spec.slack_routes is None:
            given["slack_routes"] = {}  # its own channel: the global routes are other clusters'
        own = settings.model_copy(update={**given, "cluster": spec.name, "clusters": ()})
        out.append(Cluster(spec.name, spec.name, own, dict(spec.alertmanager_labels)))
    return tuple(out)
