"""What every operator command shares: the SDK client from ``--url``/``--api-key`` (or
``TETHER_URL``/``TETHER_API_KEY``), the injected consoles, JSON output, durations, and
turning SDK errors into one line on stderr.

Output rules (docs/cli.md): human output is Rich tables on stdout; ``--json`` prints JSON
(one document, or NDJSON for streams and exports) on stdout and nothing else there;
progress and messages go to stderr. Exit codes: 0 ok, 1 an error (the server's error
code and message, or why it could not be reached), 2 bad usage (Typer's own, and bad
durations or URLs).

Consoles are injected: a command asks :func:`output` for them, which returns the
:class:`Output` set with :func:`injected` (e.g. consoles over ``StringIO`` around
``CliRunner().invoke(app, args)``), else consoles on the real stdout and stderr.

The SDK (``tether_client``) is imported when a command connects, so ``tether serve`` and
the store commands run without it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tether_client import Client

__all__ = [
    "ApiKeyOption",
    "JsonOption",
    "Output",
    "UrlOption",
    "cell",
    "connect",
    "fail",
    "fmt_cost",
    "fmt_ms",
    "injected",
    "new_client",
    "output",
    "parse_time",
    "print_json",
    "print_ndjson",
    "table",
]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TETHER_URL",
        show_envvar=True,
        help="Server base URL (default: http://127.0.0.1:7117).",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TETHER_API_KEY",
        show_envvar=True,
        help="API key (not needed in local mode).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (and nothing else there).")
]

#: A CLI command fails fast when the server is away: one attempt and a 10 s timeout per
#: request, instead of the SDK's retries meant for agents.
_CLIENT_OPTIONS: dict[str, Any] = {
    "spool": False,  # the CLI only reads (and ends or deletes): nothing to spool
    "max_retries": 1,
    "close_timeout": 0.2,
    "timeout": 10.0,
}


@dataclass
class Output:
    """The consoles and input a command uses.

    Attributes:
        out: Data (tables, JSON) goes here: stdout.
        err: Progress bars and messages: stderr.
        stdin: Where ``replay --step-by-step`` reads Enter.
    """

    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    stdin: TextIO = field(default_factory=lambda: sys.stdin)


_current: ContextVar[Output | None] = ContextVar("tether_cli_output", default=None)
_default: Output | None = None


@contextmanager
def injected(out: Output) -> Iterator[Output]:
    """Run commands inside this block with ``out``'s consoles (tests, embedding)::

    with injected(Output(out=Console(file=buffer, width=120))):
        CliRunner().invoke(app, ["sessions", "list"])
    """
    token = _current.set(out)
    try:
        yield out
    finally:
        _current.reset(token)


def output() -> Output:
    """The :class:`Output` of the running command: the injected one, else stdio."""
    global _default
    found = _current.get()
    if found is not None:
        return found
    if _default is None:
        _default = Output()
    return _default


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``tether: <message>`` on stderr and exit with ``code``."""
    output().err.print(f"tether: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def new_client(url: str | None, api_key: str | None) -> Client:
    """A ``tether_client.Client`` with the CLI's options (no spool, one attempt per call).

    Exits 2 for a malformed URL, 1 when the SDK is not installed.
    """
    try:
        import tether_client
    except ImportError:  # pragma: no cover - the Makefile installs it
        fail("this command needs the SDK: pip install ./clients/python (tether-client)")
    try:
        return tether_client.Client(url, api_key=api_key, **_CLIENT_OPTIONS)
    except tether_client.ConfigError as exc:
        fail(str(exc), code=2)


@contextmanager
def connect(url: str | None, api_key: str | None) -> Iterator[Client]:
    """A ``tether_client.Client`` for one command; SDK errors become one line on stderr.

    Exits 1 for an error answer (``tether: 404 not_found: <message>``) or an unreachable
    server (with a hint), 2 for a malformed URL.
    """
    import tether_client

    client = new_client(url, api_key)
    try:
        with client:
            yield client
    except tether_client.ServerUnreachableError as exc:
        fail(f"{exc} (is the server running? start it with `tether serve`, or set --url)")
    except tether_client.APIError as exc:
        fail(f"{exc.status} {exc.code}: {exc.message}{_details(exc.details)}")
    except tether_client.TetherError as exc:
        fail(str(exc))


def _details(details: Any) -> str:
    """The field errors of a 422 in a few words: `` (query.limit: must be <= 500; ...)``."""
    if not isinstance(details, list) or not details:
        return ""
    parts = []
    for d in details[:3]:
        if isinstance(d, dict):
            loc = ".".join(str(x) for x in d.get("loc") or [])
            parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
    more = f"; and {len(details) - 3} more" if len(details) > 3 else ""
    return f" ({'; '.join(parts)}{more})" if parts else ""


# -- times and durations ---------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str | None, *, now: datetime | None = None) -> str | None:
    """``10m``, ``2h``, ``7d`` (that long before now; also ``s``, ``ms``, ``w``) or an RFC
    3339 time, as the RFC 3339 string the server takes (``None`` stays ``None``).

    Raises:
        typer.BadParameter: neither (Typer exits 2 with the usage line).
    """
    if value is None:
        return None
    m = _DURATION.match(value)
    if m is not None:
        delta = timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
        return ((now or datetime.now(UTC)) - delta).isoformat(timespec="milliseconds")
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (10m, 2h, 7d) nor an RFC 3339 time"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.isoformat()


def time_callback(value: str | None) -> str | None:
    """A Typer ``callback`` that checks and converts ``--since``/``--until``."""
    return parse_time(value)


SinceOption = Annotated[
    str | None,
    typer.Option(
        callback=time_callback,
        help="Only after this: a duration back from now (10m, 2h, 7d) or an RFC 3339 time.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(callback=time_callback, help="Only before this (a duration or RFC 3339 time)."),
]


def stamp_of(value: str | None) -> datetime | None:
    """An RFC 3339 string from the server as an aware datetime (``None`` stays)."""
    if not value:
        return None
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# -- output ----------------------------------------------------------------------------


def _default_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """Compact JSON (UTF-8 text, dataclasses as objects)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_default_json)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    out = output().out.file
    out.write(dumps(value) + "\n")
    out.flush()


def print_ndjson(value: Any, file: IO[str] | None = None, *, flush: bool = True) -> None:
    """One NDJSON line on stdout (or ``file``); flushed unless ``flush=False`` (streams
    are read as they come; exports need not be)."""
    out = file or output().out.file
    out.write(dumps(value) + "\n")
    if flush:
        out.flush()


def cell(value: Any) -> str:
    """A table cell: empty for ``None``, JSON for lists and objects, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fmt_ms(value: float | None) -> str:
    """A duration in ms, one decimal (``""`` for none)."""
    return "" if value is None else f"{value:.1f}"


def fmt_cost(value: float | None) -> str:
    """US dollars with four decimals (``""`` for none)."""
    return "" if value is None else f"${value:.4f}"


def fmt_rate(value: float | None) -> str:
    """A 0-1 rate as a percentage with one decimal."""
    return "" if value is None else f"{value * 100:.1f}%"


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    right: Sequence[str] = (),
) -> Table:
    """A Rich table; columns named in ``right`` are right-aligned (numbers)."""
    t = Table(title=title, title_justify="left")
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t
