"""tether.logs: JSON lines with the correlation id, and secrets redacted from every part
of a record (message, arguments, exception and stack text, extras).

The integration test (tests/integration/test_logs.py) reads a real server's log; these
tests craft the records a real server rarely writes (errors, exceptions carrying secrets).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from tether.config import Settings
from tether.logs import (
    CORRELATION_ID,
    REDACTED,
    RedactingFilter,
    configure_logging,
    secret_values,
)
from tether.server.envelope import RequestMiddleware

KEY = "tk_" + "AbC123-_xyz" * 3  # the shape of a Tether API key secret
EMBEDDER_KEY = "sk-secret-embedder-0123456789"
PG_PASSWORD = "pg-pa55word-xyz"
REDIS_PASSWORD = "redis-pa55-abc"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

Logged = Callable[..., list[dict[str, Any]]]


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedder_api_key": SecretStr(EMBEDDER_KEY),
        "db": f"postgresql://tether:{PG_PASSWORD}@db.internal:5432/tether",
        "redis_url": f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def configured() -> Iterator[Callable[..., io.StringIO]]:
    """``configure(**settings)`` installs Tether's logging on a StringIO; teardown puts the
    root logger, uvicorn's loggers and warnings capture back as they were."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    }

    def configure(**overrides: Any) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(_settings(**overrides), stream=stream)
        return stream

    yield configure
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, (handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
    logging.captureWarnings(False)


@pytest.fixture
def logged(configured: Callable[..., io.StringIO]) -> Logged:
    """``logged(fn, **settings)``: run ``fn()`` with JSON logging configured and return the
    lines it wrote, parsed."""

    def run(fn: Callable[[], object], **overrides: Any) -> list[dict[str, Any]]:
        stream = configured(**overrides)
        fn()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return run


def test_a_json_line_has_timestamp_level_logger_and_message(logged: Logged) -> None:
    (line,) = logged(lambda: logging.getLogger("tether.test").warning("hello %s", "world"))
    assert list(line) == ["timestamp", "level", "logger", "message"]  # no correlation_id
    assert RFC3339_UTC.match(line["timestamp"])
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "tether.test",
        "hello world",
    )


def test_a_line_logged_while_serving_a_request_carries_its_correlation_id(
    logged: Logged,
) -> None:
    def log_in_request() -> None:
        token = CORRELATION_ID.set("cid-42")
        try:
            logging.getLogger("tether.test").info("inside")
        finally:
            CORRELATION_ID.reset(token)
        logging.getLogger("tether.test").info("outside")

    inside, outside = logged(log_in_request)
    assert inside["correlation_id"] == "cid-42"
    assert "correlation_id" not in outside


def test_exceptions_and_extras_are_fields(logged: Logged) -> None:
    def fail() -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("tether.test").exception("failed", extra={"jobs": 3})

    (line,) = logged(fail)
    assert line["message"] == "failed"
    assert line["jobs"] == 3
    assert "ValueError: boom" in line["exc_info"]
    assert "Traceback" in line["exc_info"]


def test_text_format(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(log_format="text")
    log = logging.getLogger("tether.test")
    log.warning("plain %s", KEY)
    token = CORRELATION_ID.set("cid-7")
    try:
        log.warning("in a request")
    finally:
        CORRELATION_ID.reset(token)
    first, second = stream.getvalue().splitlines()
    stamp, rest = first.split(" ", 1)
    assert RFC3339_UTC.match(stamp)
    assert rest == f"WARNING tether.test [-] plain {REDACTED}"
    assert second.endswith("WARNING tether.test [cid-7] in a request")


# -- redaction ------------------------------------------------------------------------------
SECRETS = (KEY, EMBEDDER_KEY, PG_PASSWORD, REDIS_PASSWORD, "Basic dXNlcjpzM2NyZXQ=")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"Authorization: Bearer {KEY}", "Authorization: "),
        ("authorization: Basic dXNlcjpzM2NyZXQ=", "authorization: "),
        (f"headers {{'authorization': 'Bearer {KEY}', 'host': 'x'}}", "'host': 'x'"),
        (f'{{"Authorization":"Bearer {KEY}"}}', '"Authorization":"'),
        (f"[(b'host', b'x'), (b'authorization', b'Bearer {KEY}')]", "(b'host', b'x')"),
        (f"sent bearer {KEY} again", "again"),
        (f"unknown key {KEY}", "unknown key "),
        (f"key={KEY}&x=1", "x=1"),
        (f"store at postgresql://tether:{PG_PASSWORD}@db.internal:5432/tether", "db.internal"),
        (f"psycopg: host=db user=tether password={PG_PASSWORD} dbname=t", "dbname=t"),
        (f"redis at redis://:{REDIS_PASSWORD}@cache.internal:6379", "cache.internal"),
        (f"rediss://u:{REDIS_PASSWORD}@other.host/0", "other.host"),
        (f"embeddings failed: key {EMBEDDER_KEY} refused", "refused"),
        (f"TETHER_EMBEDDER_API_KEY={EMBEDDER_KEY}", "TETHER_EMBEDDER_API_KEY="),
        (f"{{'api_key': '{EMBEDDER_KEY}'}}", "'api_key'"),
    ],
)
def test_secrets_are_redacted_in_messages(logged: Logged, text: str, kept: str) -> None:
    (line,) = logged(lambda: logging.getLogger("tether.test").error(text))
    message = line["message"]
    assert REDACTED in message
    assert kept in message  # only the secret goes
    for secret in SECRETS:
        assert secret not in message


def test_secrets_are_redacted_in_arguments_of_any_type(logged: Logged) -> None:
    log = logging.getLogger("tether.test")

    def log_them() -> None:
        log.info("str %s", f"Bearer {KEY}")
        log.info("tuple %s %d", [(b"authorization", f"Bearer {KEY}".encode())], 1)
        log.info("mapping %(url)s", {"url": f"postgresql://u:{PG_PASSWORD}@h/db"})
        log.info("object %r", ValueError(f"bad key {KEY}"))

    lines = logged(log_them)
    assert [line["message"].split(" ")[0] for line in lines] == [
        "str",
        "tuple",
        "mapping",
        "object",
    ]
    text = json.dumps(lines)
    assert KEY not in text
    assert PG_PASSWORD not in text
    assert text.count(REDACTED) == 4


def test_secrets_are_redacted_in_exceptions_stacks_and_extras(logged: Logged) -> None:
    log = logging.getLogger("tether.test")

    def log_them() -> None:
        try:
            raise RuntimeError(f"embedder refused {EMBEDDER_KEY} with Authorization: Bearer {KEY}")
        except RuntimeError:
            log.exception("embedding failed")
        try:
            raise ConnectionError(f"cannot reach redis://:{REDIS_PASSWORD}@cache:6379")
        except ConnectionError as exc:
            log.error("bus down", exc_info=exc)
        log.warning("with stack", stack_info=True, extra={"header": f"Bearer {KEY}"})

    first, second, third = logged(log_them)
    assert "RuntimeError: embedder refused [redacted]" in first["exc_info"]
    assert "ConnectionError: cannot reach redis://:[redacted]@cache:6379" in second["exc_info"]
    assert "stack_info" in third
    assert third["header"] == f"Bearer {REDACTED}"
    text = json.dumps([first, second, third])
    for secret in SECRETS:
        assert secret not in text


def test_a_record_whose_arguments_do_not_fit_is_still_logged_and_redacted() -> None:
    # Through a logger, pytest's own capture handler would fail the test on this record
    # before ours sees it; the filter is called directly.
    record = logging.LogRecord("tether.test", logging.INFO, __file__, 1, "%s and %s", (KEY,), None)
    assert RedactingFilter().filter(record) is True
    assert record.args is None
    assert KEY not in record.getMessage()
    assert REDACTED in record.getMessage()


def test_access_lines_lose_query_values(logged: Logged) -> None:
    # What uvicorn's httptools protocol logs for each request (TETHER_ACCESS_LOG=true).
    def access() -> None:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/v1/memories?namespace=n&text=private%20words&limit=3",
            "1.1",
            200,
        )

    (line,) = logged(access)
    assert line["logger"] == "uvicorn.access"
    assert line["message"] == (
        '127.0.0.1:5000 - "GET /v1/memories?namespace=[redacted]&text=[redacted]'
        '&limit=[redacted] HTTP/1.1" 200'
    )


def test_configured_secrets_are_collected_from_settings() -> None:
    assert set(secret_values(_settings())) == {EMBEDDER_KEY, PG_PASSWORD, REDIS_PASSWORD}
    assert secret_values(Settings(db="/tmp/t.db")) == []


def test_short_literal_secrets_are_not_searched_for() -> None:
    # A 3-character secret would blank out unrelated words; patterns still catch it in URLs.
    redact = RedactingFilter(["abc", "long-secret"]).redact
    assert redact("abc long-secret") == f"abc {REDACTED}"
    assert redact("postgresql://u:abc@h/db") == f"postgresql://u:{REDACTED}@h/db"


# -- set-up ---------------------------------------------------------------------------------
def test_uvicorn_loggers_and_warnings_go_through_the_same_handler(
    configured: Callable[..., io.StringIO],
) -> None:
    configured()
    stream = configured()  # again: replaces its handler instead of adding a second
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count("tether") == 1
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:1")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated, key {KEY}", UserWarning, stacklevel=1)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "py.warnings"]
    assert KEY not in lines[1]["message"]


def test_the_level_setting_applies(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(log_level="warning")
    logging.getLogger("tether.test").info("not shown")
    logging.getLogger("tether.test").warning("shown")
    assert [json.loads(x)["message"] for x in stream.getvalue().splitlines()] == ["shown"]


def test_the_middleware_sets_the_correlation_id_for_the_request_only() -> None:
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(CORRELATION_ID.get())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def requests() -> list[str | None]:
        transport = httpx.ASGITransport(app=RequestMiddleware(app, max_body_bytes=1024))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.get("/", headers={"X-Correlation-ID": "test-cid-123"})
            second = await client.get("/")
        cids = [first.headers["x-correlation-id"], second.headers["x-correlation-id"]]
        return [CORRELATION_ID.get(), *cids]

    after, first_cid, second_cid = asyncio.run(requests())
    assert seen == ["test-cid-123", second_cid]
    assert first_cid == "test-cid-123"
    assert after is None  # reset when the request ended
