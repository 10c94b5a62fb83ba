"""Sign requests exactly as Slack does (v0 HMAC-SHA256 of ``v0:{timestamp}:{body}``)."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Return Slack's signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def post_signed(
    url: str,
    body: bytes,
    secret: str,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    signature: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, dict[str, str]]:
    """POST a signed request into the bot; return (status, body, headers). Errors are returned."""
    headers = {"Content-Type": content_type, **sign(secret, body, timestamp)}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)
