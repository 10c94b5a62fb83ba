"""``gpu-risk check`` against Alertmanager: ready, with the configured credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.commands.check_findings import Finding
from storage.redact import redact_url

if TYPE_CHECKING:
    from bot.config import Settings


def alertmanager_findings(settings: Settings) -> list[Finding]:
    """Alertmanager answers /-/ready (or /api/v2/status) with the configured credentials."""
    import requests

    url = str(getattr(settings, "alertmanager_url", "") or "").rstrip("/")
    shown = redact_url(url)
    kwargs: dict[str, Any] = {"timeout": float(getattr(settings, "alertmanager_timeout", 10.0))}
    user = getattr(settings, "alertmanager_username", None)
    password = getattr(settings, "alertmanager_password", None)
    token = getattr(settings, "alertmanager_bearer_token", None)
    if user and password is not None:
        kwargs["auth"] = (user, password.get_secret_value())
    if token is not None:
        kwargs["headers"] = {"Authorization": f"Bearer {token.get_secret_value()}"}
    codes: list[str] = []
    for path in ("/-/ready", "/api/v2/status"):
        try:
            resp = requests.get(url + path, **kwargs)
        except requests.RequestException as exc:
            return [
                Finding(
                    False,
                    f"cannot reach Alertmanager at {shown} ({type(exc).__name__}): check "
                    "GPU_RISK_ALERTMANAGER_URL and that it is running",
                )
            ]
        if resp.status_code == 200:
            return [Finding(True, f"Alertmanager at {shown} is ready")]
        codes.append(f"{path} HTTP {resp.status_code}")
        if resp.status_code in (401, 403):
            break
    return [
        Finding(
            False,
            f"Alertmanager at {shown} is not ready ({', '.join(codes)}): check the URL and "
            "GPU_RISK_ALERTMANAGER_USERNAME/PASSWORD or BEARER_TOKEN",
        )
    ]
