"""Mask secrets in any text that may reach a log, an error or a report."""

from __future__ import annotations

import base64
import binascii
import logging
import traceback
from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (longest first) in ``text`` with ``***``.

    >>> redact("key=abc123", ["abc123"])
    'key=***'
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


MIN_SECRET_CHARS = 4  # shorter strings are not masked: they would mangle ordinary text


def authorization_secrets(header: str) -> list[str]:
    """Every secret an ``Authorization`` header value carries: the value, its credential, and
    for ``Basic``/``ApiKey`` the decoded password or key.

    >>> authorization_secrets("Basic dXNlcjpzM2NyZXQ=")
    ['Basic dXNlcjpzM2NyZXQ=', 'dXNlcjpzM2NyZXQ=', 'user:s3cret', 's3cret']
    """
    scheme, _, credential = header.partition(" ")
    found = [header, credential]
    if scheme.lower() in ("basic", "apikey"):
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" in decoded:
            found += [decoded, decoded.split(":", 1)[1]]
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET_CHARS]


def client_secrets(es: object) -> list[str]:
    """The secrets an Elasticsearch client (sync or async) sends: its Authorization headers,
    whether given as auth options or as credentials in the URL."""
    headers = [getattr(es, "_headers", None) or {}]
    try:
        nodes = es.transport.node_pool.all()  # type: ignore[attr-defined]
    except AttributeError:
        nodes = []
    headers += [node.config.headers for node in nodes]
    found: list[str] = []
    for entry in headers:
        value = entry.get("authorization")
        if value:
            found += authorization_secrets(str(value))
    return list(dict.fromkeys(found))


class RedactingFilter(logging.Filter):
    """A logging filter that masks the given secrets in every record it passes: its message
    and the traceback of the exception logged with it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text, trace = record.getMessage(), record.exc_text
            if record.exc_info and record.exc_info[1] is not None:  # formatted here: masked
                trace = "".join(traceback.format_exception(record.exc_info[1])).rstrip()
            if trace:
                text += "\n" + trace
            record.msg, record.args = redact(text, self.secrets), None
            record.exc_info, record.exc_text = None, None
        return True
