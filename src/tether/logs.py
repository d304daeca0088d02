"""Logging for ``tether serve``: one JSON object per line on stderr, secrets redacted.

:func:`configure_logging` installs one handler on the root logger. Every record that
reaches it, Tether's and uvicorn's alike (``uvicorn``, ``uvicorn.error``,
``uvicorn.access`` propagate to it), passes two filters and one formatter:

- :class:`CorrelationIdFilter` copies the correlation id of the request being served into
  ``record.correlation_id``. :class:`~tether.server.envelope.RequestMiddleware` sets
  :data:`CORRELATION_ID` (a :class:`~contextvars.ContextVar`) when it assigns the id and
  resets it when the request ends, so any code running for that request (its task, and
  threads started with :func:`contextvars.copy_context`) logs it without passing it around.
- :class:`RedactingFilter` replaces, in the message, its arguments, the exception and
  stack text and string extras: ``Authorization`` header values, ``Bearer <token>``,
  Tether API key secrets (``tk_`` and 16+ URL-safe characters), passwords in URLs
  (``postgresql://user:password@host``) and ``password=``/``api_key=`` pairs, and the
  literal values of the configured secret settings (every ``SecretStr`` field of
  :class:`~tether.config.Settings`, and the passwords of URL-valued settings). Each becomes
  ``[redacted]``. For ``uvicorn.access`` lines, query-string values are redacted too (a
  ``GET /v1/memories?text=...`` carries memory text).
- ``TETHER_LOG_FORMAT=json`` (the default) writes ``{"timestamp", "level", "logger",
  "message"}`` plus ``correlation_id`` (only while serving a request), ``exc_info`` and
  ``stack_info`` when present, and any ``extra=`` fields; ``timestamp`` is RFC 3339 in UTC
  with milliseconds (``2026-01-31T12:00:00.123Z``). ``text`` writes
  ``<timestamp> <LEVEL> <logger> [<correlation id or ->] <message>``.

Tether never logs request or memory bodies itself; the redaction is the safety net for
what reaches a log line anyway (an exception's text, a header echoed by a library).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pydantic import SecretStr
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from tether.config import Settings

__all__ = [
    "CORRELATION_ID",
    "REDACTED",
    "CorrelationIdFilter",
    "RedactingFilter",
    "configure_logging",
    "secret_values",
]

#: The correlation id of the request being served in this context, or ``None``.
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tether_correlation_id", default=None
)

REDACTED = "[redacted]"

# Loggers uvicorn writes to. Left without handlers, they propagate to the root handler
# (so the same filters and formatter apply); uvicorn.run(log_config=None) keeps it so.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# A literal secret shorter than this is not searched for: a 1-3 character value would
# blank out unrelated words in every line. Such values are still redacted where a pattern
# below finds them (in a URL, after "password=").
_MIN_SECRET_CHARS = 4

# "Authorization: <v>", "'authorization': '<v>'", '"Authorization":"<v>"',
# "(b'authorization', b'<v>')" (raw ASGI headers), "authorization=<v>": the value up to the
# next quote, line end or separator. Runs first so "Bearer x" goes as a whole.
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization['\"]?\s*(?:[:=]|,(?=\s*b?['\"]))\s*b?['\"]?)"
    r"(?!\[redacted\])[^'\"\r\n,;})\]]+"
)
# RFC 6750 b64token characters; 8 or more, so prose ("a bearer token") stays readable.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
# Tether API key secrets: tk_ and 20+ URL-safe characters; 16+ catches truncated ones too.
_API_KEY = re.compile(r"tk_[A-Za-z0-9_-]{16,}")
# userinfo of any URL: scheme://user:password@host (postgresql, redis, an embedder's URL).
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+@")
# libpq key/value conninfo ("host=db password=s3cret"), dict reprs and JSON of such fields.
# No \b before the name: TETHER_EMBEDDER_API_KEY=... has none.
_SECRET_PAIR = re.compile(
    r"(?i)((?:password|passwd|api[_-]?key)['\"]?\s*[:=]\s*b?['\"]?)(?!\[redacted\])"
    r"[^'\"\s,;})\]&]+"
)
# name=value pairs of a query string, in uvicorn's access line ("GET /path?a=b HTTP/1.1").
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"]*=)[^&\s\"]*")

# Attributes every LogRecord has (and ours); anything else on a record is an extra.
_RECORD_ATTRS = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
)
# uvicorn adds a colourised copy of some messages as an extra; it is not log content.
_NOT_LOGGED = ("correlation_id", "color_message")
_TRACEBACKS = logging.Formatter()


def _url_passwords(value: str) -> Iterator[str]:
    for match in _URL_PASSWORD.finditer(value):
        yield match.group(0)[len(match.group(1)) : -1]


def secret_values(settings: Settings) -> list[str]:
    """The secrets configured in ``settings``, to redact wherever they appear.

    Returns:
        The value of every ``SecretStr`` field (also inside a list, tuple or set) and the
        password of every URL in a string field (``TETHER_DB``, ``TETHER_REDIS_URL``,
        an embedder URL), without duplicates or empty values.
    """
    found: dict[str, None] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        items = value if isinstance(value, list | tuple | set | frozenset) else (value,)
        for item in items:
            if isinstance(item, SecretStr):
                found[item.get_secret_value()] = None
            elif isinstance(item, str):
                found.update(dict.fromkeys(_url_passwords(item)))
    found.pop("", None)
    return list(found)


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, or something close when the arguments do not fit."""
    try:
        return record.getMessage()
    except Exception:  # a bad format call: log what we have rather than raise into it
        return f"{record.msg!s} {record.args!r}"


class RedactingFilter(logging.Filter):
    """Replace secrets in a record with ``[redacted]`` (see the module docstring).

    The message is formatted once here (``msg % args``), redacted, and stored back as
    ``record.msg`` with ``record.args = None``, so no argument of any type (a header
    list, an exception, a URL) reaches a formatter unredacted. An exception is rendered to
    ``record.exc_text`` and redacted, and ``record.exc_info`` cleared. Never raises and
    never drops a record.

    Args:
        secrets: literal values to redact (e.g. :func:`secret_values`); values shorter
            than 4 characters are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        literals = sorted({s for s in secrets if len(s) >= _MIN_SECRET_CHARS}, key=len)
        # Longest first, so a secret that contains another goes as a whole.
        pattern = "|".join(re.escape(s) for s in reversed(literals))
        self._literals = re.compile(pattern) if pattern else None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactingFilter:
        """A filter for the secrets configured in ``settings``."""
        return cls(secret_values(settings))

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        text = _API_KEY.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
        text = _SECRET_PAIR.sub(rf"\1{REDACTED}", text)
        if self._literals is not None:
            text = self._literals.sub(REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = _message(record)
        if record.name == "uvicorn.access":
            message = _QUERY_VALUE.sub(rf"\1{REDACTED}", message)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class CorrelationIdFilter(logging.Filter):
    """Set ``record.correlation_id`` to the id of the request being served (from
    :data:`CORRELATION_ID`); records logged outside a request get no such attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        cid = CORRELATION_ID.get()
        if cid is not None:
            record.correlation_id = cid
        return True


def _rfc3339(created: float) -> str:
    """A record's ``created`` (Unix seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _JsonFormatter(JsonFormatter):
    """python-json-logger's formatter with Tether's field names and order."""

    def __init__(self) -> None:
        super().__init__(reserved_attrs=[*RESERVED_ATTRS, *_NOT_LOGGED])

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = _rfc3339(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        cid = getattr(record, "correlation_id", None)
        if cid is not None:
            log_data["correlation_id"] = cid
        # exc_info / stack_info (from message_dict) and extra= fields.
        super().add_fields(log_data, record, message_dict)


class _TextFormatter(logging.Formatter):
    """``<timestamp> <LEVEL> <logger> [<cid>] <message>``, the timestamp as in JSON."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
            defaults={"correlation_id": "-"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _rfc3339(record.created)


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Set up the stdlib logging of a serving process (``tether serve``).

    Installs one handler on the root logger, writing to ``stream`` (default
    ``sys.stderr``) in ``settings.log_format`` with the filters above, at
    ``settings.log_level``; makes uvicorn's loggers propagate to it (no handlers of their
    own) and routes :mod:`warnings` through logging. Calling it again replaces the
    handler it installed before; other handlers on the root logger are left alone.

    Returns:
        The installed handler.

    Raises:
        ValueError: ``settings.log_level`` is not a level name.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = _JsonFormatter() if settings.log_format == "json" else _TextFormatter()
    handler.setFormatter(formatter)
    handler.addFilter(CorrelationIdFilter())
    handler.addFilter(RedactingFilter.from_settings(settings))
    handler.set_name("tether")
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    for old in [h for h in root.handlers if h.get_name() == "tether"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    return handler
