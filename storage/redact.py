"""Keep credentials out of every output: URLs with their userinfo and secret query values masked.

``redact_url`` masks one URL (``http://user:pass@host/?token=x`` -> ``http://***@host/?token=***``);
``redact_text`` masks every URL inside a text (error messages, log lines); ``RedactingFilter``
applies ``redact_text`` to log records, so a handler never writes a credential a library logged.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# Query parameters whose values are credentials (matched anywhere in the name, any case).
_SECRET_PARAM = re.compile(
    r"token|passw|pwd|secret|key|auth|credential|signature|session|cookie", re.IGNORECASE
)
# A URL inside free text: a scheme (sqlalchemy's ``postgresql+psycopg`` too), then no blanks.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_QUERY_PAIR = re.compile(r"(?P<name>[^=&;]*)=(?P<value>[^&;]*)")


def _mask_query(query: str) -> str:
    """Mask the values of secret-looking parameters in a raw query string, leave the rest as is."""

    def one(m: re.Match[str]) -> str:
        name = m.group("name")
        return f"{name}={MASK}" if _SECRET_PARAM.search(name) else m.group(0)

    return _QUERY_PAIR.sub(one, query)


def redact_url(url: str) -> str:
    """Return ``url`` with its userinfo as ``***@`` and secret query parameter values as ``***``."""
    out = url
    authority = out.find("//")
    if authority >= 0:
        start = authority + 2
        # The last "@": a password may hold an unescaped "/", "?" or "#" and must not leak.
        at = out.rfind("@", start)
        if at >= 0:
            out = f"{out[:start]}{MASK}{out[at:]}"
    head, sep, tail = out.partition("?")
    if not sep:
        head, sep, tail = out.partition("#")
    return head + sep + _mask_query(tail) if sep else out


def redact_text(text: str) -> str:
    """Return ``text`` with every URL in it passed through ``redact_url``."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in URLs of a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (message rendered once, masked); never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def install_redacting_filter(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (default: the root logger)."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
