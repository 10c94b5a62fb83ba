"""deploy/kubernetes renders with kustomize and every object is valid against the Kubernetes API.

Each rendered object is deserialized into the ``kubernetes`` client's model class (required
fields checked) and compared key by key with the model's ``attribute_map`` (a misspelt or
misplaced field fails instead of being silently dropped by the API server). The ServiceMonitor is
a CRD and is checked by hand. The settings in the ConfigMap and the Secret's keys are checked
against ``bot.config.Settings``, and the rendered configuration is loaded by ``load_settings``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings, _env_name, load_settings
from bot.secret_files import SECRETS_DIR_ENV, secret_fields

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "deploy" / "kubernetes"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
SETTINGS_ENV = {_env_name(name) for name in Settings.model_fields}
SECRET_ENV = {_env_name(name) for name in secret_fields()}
#: openapi_types that are not models (``object`` is int-or-string, e.g. a probe's port).
PRIMITIVES = {"str", "int", "bool", "float", "object", "datetime", "date"}


def _kustomize_command() -> list[str]:
    """kubectl's built-in kustomize, else a standalone kustomize; skip (fail under CI) if none."""
    for candidate in (shutil.which("kubectl"), "/usr/bin/kubectl"):
        if candidate and os.access(candidate, os.X_OK):
            return [candidate, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    reason = (
        "kubectl (with its built-in kustomize) is not installed: install kubectl >= 1.27 from "
        "https://kubernetes.io/docs/tasks/tools/ to render deploy/kubernetes"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/kubernetes`` renders."""
    result = subprocess.run(
        [*_kustomize_command(), str(BASE)], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kustomize failed:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs, "kustomize rendered nothing"
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _by_prefix(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated object (name + content hash) by the name it has in kustomization.yaml."""
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} {prefix}-<hash>, found {len(found)}"
    return found[0]


# --- validation against the API models --------------------------------------------------------


def _model_name(obj: dict[str, Any]) -> str:
    """apps/v1 Deployment -> V1Deployment."""
    version = obj["apiVersion"].split("/")[-1]
    return version[0].upper() + version[1:] + obj["kind"]


def _unknown_fields(data: Any, type_name: str, where: str) -> list[str]:
    """Every key of ``data`` that the model ``type_name`` does not define, recursively."""
    from kubernetes.client import models

    if data is None:
        return []
    list_of = re.fullmatch(r"[Ll]ist\[(.+)\]", type_name)
    if list_of:
        if not isinstance(data, list):
            return [f"{where}: expected a list, got {type(data).__name__}"]
        return [
            e
            for i, item in enumerate(data)
            for e in _unknown_fields(item, list_of[1], f"{where}[{i}]")
        ]
    dict_of = re.fullmatch(r"[Dd]ict[\[(]str, (.+)[\])]", type_name)
    if dict_of:
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping, got {type(data).__name__}"]
        return [e for k, v in data.items() for e in _unknown_fields(v, dict_of[1], f"{where}.{k}")]
    if type_name in PRIMITIVES:
        return []
    model = getattr(models, type_name, None)
    if model is None:
        return [f"{where}: the client has no model {type_name}"]
    if not isinstance(data, dict):
        return [f"{where}: expected a {type_name} mapping, got {type(data).__name__}"]
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    errors = [f"{where}.{key}: unknown field of {type_name}" for key in data if key not in by_json]
    for key, value in data.items():
        if key in by_json:
            errors += _unknown_fields(value, model.openapi_types[by_json[key]], f"{where}.{key}")
    return errors


def _validate(obj: dict[str, Any]) -> Any:
    """Deserialize into the client's model (required fields, types) and reject unknown fields."""
    from kubernetes.client import ApiClient

    name = _model_name(obj)
    errors = _unknown_fields(obj, name, f"{obj['kind']}/{obj['metadata']['name']}")
    assert not errors, "\n".join(errors)
    model = ApiClient()._ApiClient__deserialize(obj, name)  # type: ignore[attr-defined]
    assert type(model).__name__ == name
    return model


def test_every_rendered_object_is_a_valid_kubernetes_object(
    rendered: list[dict[str, Any]],
) -> None:
    pytest.importorskip("kubernetes", reason="pip install -e '.[dev]' (the kubernetes client)")
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    for obj in rendered:
        if obj["kind"] == "ServiceMonitor":
            continue  # a CRD: checked by hand below
        _validate(obj)


def test_the_validator_catches_unknown_and_misplaced_fields(
    rendered: list[dict[str, Any]],
) -> None:
    pytest.importorskip("kubernetes", reason="pip install -e '.[dev]' (the kubernetes client)")
    deployment = yaml.safe_load(yaml.safe_dump(_one(rendered, "Deployment")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pathh"] = "/livez"
    container["resources"]["limit"] = {"cpu": "1"}
    errors = _unknown_fields(deployment, "V1Deployment", "d")
    assert any("httpGet.pathh" in e for e in errors)
    assert any("resources.limit" in e for e in errors)
    clean = yaml.safe_load(yaml.safe_dump(_one(rendered, "Deployment")))
    del clean["spec"]["selector"]  # required
    with pytest.raises(ValueError, match="selector"):
        _validate(clean)


def test_secret_example_is_a_valid_secret_with_only_settings_keys() -> None:
    pytest.importorskip("kubernetes", reason="pip install -e '.[dev]' (the kubernetes client)")
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    _validate(secret)
    assert secret["metadata"]["name"] == "gpu-risk"
    keys = set(secret["stringData"])
    commented = set(re.findall(r"^\s*#\s*([A-Z_]+):", SECRET_EXAMPLE.read_text(), re.MULTILINE))
    assert keys | commented == SECRET_ENV, "the example lists exactly the secret settings"
    assert keys | commented >= {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "GPU_RISK_PROMETHEUS_PASSWORD",
        "GPU_RISK_PROMETHEUS_BEARER_TOKEN",
        "GPU_RISK_DATABASE_URL",
    }
    assert all("REPLACE-ME" in str(v) for v in secret["stringData"].values()), "no real values"


def test_the_secret_is_not_applied_by_the_base(rendered: list[dict[str, Any]]) -> None:
    """Applying the base must never overwrite the tokens the user created."""
    assert not [d for d in rendered if d["kind"] == "Secret"]


# --- the Deployment ---------------------------------------------------------------------------


def _container(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_probes_point_at_livez_and_readyz_on_the_http_port(rendered: list[dict[str, Any]]) -> None:
    container = _container(rendered)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["port"] in ports
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert int(env["GPU_RISK_HTTP_PORT"]) == ports["http"], "the bot listens where probes look"


def test_runs_as_non_root_with_resources_and_one_replica(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(rendered)
    assert deployment["spec"]["replicas"] == 1
    assert "PostgreSQL" in (BASE / "deployment.yaml").read_text(), "the comment on scaling out"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["image"].startswith("gpu-risk:")
    assert pod["serviceAccountName"] == _one(rendered, "ServiceAccount")["metadata"]["name"]


def test_volumes_refer_to_rendered_objects(rendered: list[dict[str, Any]]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in _container(rendered)["volumeMounts"]}
    assert set(mounts) == set(volumes)
    names = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in names
    assert mounts["data"] == "/data", "the image's SQLite file and models live in /data"
    assert ("ConfigMap", volumes["topology"]["configMap"]["name"]) in names
    assert volumes["secrets"]["secret"]["secretName"] == "gpu-risk"
    for source in _container(rendered)["envFrom"]:
        assert ("ConfigMap", source["configMapRef"]["name"]) in names


def test_env_names_are_settings(rendered: list[dict[str, Any]]) -> None:
    container = _container(rendered)
    config = _by_prefix(rendered, "ConfigMap", "gpu-risk-config")
    names = set(config["data"]) | {e["name"] for e in container.get("env", [])}
    unknown = names - SETTINGS_ENV - {SECRETS_DIR_ENV}
    assert not unknown, f"not settings of bot.config.Settings: {sorted(unknown)}"
    assert not (set(config["data"]) & SECRET_ENV), "secrets belong in the Secret, not the ConfigMap"
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "gpu-risk" and ref["key"] in SECRET_ENV


def test_rendered_configuration_loads(
    rendered: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's settings + the example Secret as files, as the pod sees them, load."""
    from storage.topology import load_topology

    for name in list(os.environ):
        if name.upper().startswith(("GPU_RISK_", "SLACK_")):
            monkeypatch.delenv(name)
    container = _container(rendered)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config = _by_prefix(rendered, "ConfigMap", "gpu-risk-config")["data"]
    topology = _by_prefix(rendered, "ConfigMap", "gpu-risk-topology")["data"]
    assert config[SECRETS_DIR_ENV] == mounts["secrets"]
    assert config["GPU_RISK_TOPOLOGY"] == f"{mounts['topology']}/topology.yaml"

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in yaml.safe_load(SECRET_EXAMPLE.read_text())["stringData"].items():
        (secrets / key).write_text(value + "\n")
    (tmp_path / "topology.yaml").write_text(topology["topology.yaml"])
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(secrets))
    monkeypatch.setenv("GPU_RISK_TOPOLOGY", str(tmp_path / "topology.yaml"))
    for item in container.get("env", []):
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    settings = load_settings()
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-REPLACE-ME"
    assert settings.prometheus_url
    assert load_topology(settings.topology).racks  # type: ignore[arg-type]


# --- Service, PodDisruptionBudget, ServiceMonitor ---------------------------------------------


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_selectors_match_the_pods(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = _one(rendered, "Service")
    assert _matches(service["spec"]["selector"], pod_labels)
    pdb = _one(rendered, "PodDisruptionBudget")
    assert _matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    ports = {p["name"] for p in _container(rendered)["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports


def test_service_monitor_scrapes_metrics_from_the_service(rendered: list[dict[str, Any]]) -> None:
    monitor = _one(rendered, "ServiceMonitor")
    service = _one(rendered, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) <= {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    endpoints = monitor["spec"]["endpoints"]
    assert endpoints
    allowed = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
    for endpoint in endpoints:
        assert set(endpoint) <= allowed, f"unexpected endpoint fields {set(endpoint) - allowed}"
        assert endpoint["port"] in port_names, "ServiceMonitor port must name a Service port"
        assert endpoint["path"] == "/metrics"
        for duration in ("interval", "scrapeTimeout"):
            if duration in endpoint:
                assert re.fullmatch(r"\d+[smh]", endpoint[duration])
