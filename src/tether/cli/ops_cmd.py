"""``tether diagnostics``, ``tether stats`` and ``tether doctor``: how the agents and the
server are doing."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Group

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    SinceOption,
    UntilOption,
    UrlOption,
    cell,
    connect,
    fmt_cost,
    fmt_ms,
    fmt_rate,
    output,
    print_json,
    table,
)

# -- diagnostics ---------------------------------------------------------------------------

#: The columns of the ``diagnostics`` table (docs/cli.md).
DIAGNOSTICS_COLUMNS = [
    "kind",
    "name",
    "count",
    "running",
    "errors",
    "error rate",
    "p50 ms",
    "p95 ms",
    "max ms",
    "in tokens",
    "out tokens",
    "cost",
]
_DIAG_NUMBERS = DIAGNOSTICS_COLUMNS[2:]


def component_row(c: dict[str, Any], kind: str | None = None) -> list[str]:
    """One row of the diagnostics table."""
    return [
        kind if kind is not None else c["kind"],
        cell(c.get("name")) if kind is None else "",
        str(c.get("count", 0)),
        str(c.get("running", 0)),
        str(c.get("errors", 0)),
        fmt_rate(c.get("error_rate")),
        fmt_ms(c.get("p50_ms")),
        fmt_ms(c.get("p95_ms")),
        fmt_ms(c.get("max_ms")),
        str(c.get("input_tokens") or 0),
        str(c.get("output_tokens") or 0),
        fmt_cost(c.get("cost_usd") or 0.0),
    ]


def render_diagnostics(data: dict[str, Any]) -> Group:
    """The human view: one row per component, a total row, then the last error messages."""
    components = data.get("components") or []
    rows = [component_row(c) for c in components]
    totals = data.get("totals")
    if totals:
        rows.append(component_row(totals, kind="total"))
    scope = f"session {data['session_id']}" if data.get("session_id") else "all sessions"
    window = " ".join(
        part
        for part in (
            f"since {data['since']}" if data.get("since") else "",
            f"until {data['until']}" if data.get("until") else "",
        )
        if part
    )
    title = f"diagnostics: {scope}" + (f", {window}" if window else "")
    title += f" ({data.get('sessions', 0)} sessions)" if not data.get("session_id") else ""
    parts: list[Any] = [table(DIAGNOSTICS_COLUMNS, rows, title=title, right=_DIAG_NUMBERS)]
    errors = [
        [
            f"{c['kind']}/{c['name']}" if c.get("name") else c["kind"],
            e.get("at") or "",
            f"{e.get('session_id', '')}#{e.get('seq', '')}",
            e.get("message") or "",
        ]
        for c in components
        for e in c.get("last_errors") or []
    ]
    if errors:
        parts.append(table(["component", "at", "event", "message"], errors, title="last errors"))
    return Group(*parts)


def diagnostics(
    session_id: Annotated[
        str | None, typer.Argument(help="One session; all sessions without it.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    agent: Annotated[
        str | None, typer.Option(help="Only this agent's sessions (without a session).")
    ] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per component (kind and name: llm, tool, stt, tts...): counts, running spans,
    errors and error rate, p50/p95/max durations (ms), tokens and cost, with the last error
    messages; of one session, or across sessions (the server's default window: 24 h)."""
    with connect(url, api_key) as client:
        data = client.diagnostics(session_id, since=since, until=until, agent=agent)
    if as_json:
        print_json(data)
        return
    output().out.print(render_diagnostics(data))


# -- stats -------------------------------------------------------------------------------


def stats(url: UrlOption = None, api_key: ApiKeyOption = None, as_json: JsonOption = False) -> None:
    """Sessions by status, events by kind, and the last 24 h."""
    with connect(url, api_key) as client:
        data = client.server_stats()
    if as_json:
        print_json(data)
        return
    sessions = data.get("sessions") or {}
    events = data.get("events") or {}
    recent = data.get("last_24h") or {}
    rows = [["sessions", "total", str(sessions.get("total", 0))]]
    rows += [["sessions", k, str(v)] for k, v in sorted((sessions.get("by_status") or {}).items())]
    rows.append(["events", "total", str(events.get("total", 0))])
    rows += [["events", k, str(v)] for k, v in sorted((events.get("by_kind") or {}).items())]
    rows += [["last 24 h", k, str(recent.get(k, 0))] for k in ("sessions", "events", "errors")]
    output().out.print(table(["what", "of", "count"], rows, right=("count",)))


# -- doctor ------------------------------------------------------------------------------

#: What to do when a check is not ok, when the server gives no hint of its own.
HINTS = {
    "server": "start it with `tether serve`, or point --url / TETHER_URL at it",
    "store": "check TETHER_DB, free disk space and file permissions; see the server's log",
    "bus": "start Redis or fix TETHER_REDIS_URL (unset it to use the in-process bus "
    "with a single replica)",
    "embedder": "check TETHER_EMBEDDER (the embeddings API's URL and model); memories are "
    "stored and keyword-searchable meanwhile, and embedded when it is back",
    "index_backlog": "the indexer is behind: check the embedder, then `tether memory reindex`",
    "disk": "free disk space where TETHER_HOME / the database lives",
    "auth": "pass a live API key with --api-key or TETHER_API_KEY (`tether keys create`)",
}
#: How long doctor waits for checks still ``unknown`` (the embedder's first probe) (s).
UNKNOWN_WAIT_S = 10.0
_UNKNOWN_POLL_S = 0.5


def doctor(
    wait: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for checks that are still unknown.")
    ] = UNKNOWN_WAIT_S,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the server and its dependencies (store, bus, embedder, index backlog, disk):
    one row each with status, latency, detail and a fix hint. Exit 1 when any is not ok."""
    import tether_client

    checks: list[dict[str, Any]] = []
    with connect(url, api_key) as client:
        deadline = time.monotonic() + wait
        while True:
            t0 = time.perf_counter()
            try:
                deps = client.deps()
            except tether_client.ServerUnreachableError as exc:
                checks = [_check("server", "http", "down", None, str(exc))]
                break
            except tether_client.AuthenticationError as exc:
                checks = [_check("server", "http", "down", None, str(exc))]
                checks[0]["hint"] = HINTS["auth"]
                break
            except tether_client.APIError as exc:  # it answers, but not with the checks
                checks = [_check("server", "http", "down", None, str(exc))]
                break
            latency = round((time.perf_counter() - t0) * 1000, 3)
            checks = [_check("server", "http", "ok", latency, client.config.url), *deps]
            if all(c.get("status") != "unknown" for c in checks) or time.monotonic() > deadline:
                break
            time.sleep(_UNKNOWN_POLL_S)
    for check in checks:
        if check.get("status") != "ok" and not check.get("hint"):
            check["hint"] = HINTS.get(check.get("name", ""), "see the server's log")
    healthy = all(c.get("status") == "ok" for c in checks)
    if as_json:
        print_json({"ok": healthy, "checks": checks})
    else:
        rows = [
            [
                c.get("name", ""),
                cell(c.get("kind")),
                c.get("status", ""),
                fmt_ms(c.get("latency_ms")),
                cell(c.get("detail")),
                cell(c.get("hint")) if c.get("status") != "ok" else "",
            ]
            for c in checks
        ]
        columns = ["check", "kind", "status", "latency ms", "detail", "hint"]
        output().out.print(table(columns, rows, right=("latency ms",)))
        verdict = "all checks ok" if healthy else "some checks are not ok"
        output().out.print(verdict)
    if not healthy:
        raise typer.Exit(code=1)


def _check(
    name: str, kind: str, status: str, latency_ms: float | None, detail: str | None
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "status": status,
        "latency_ms": latency_ms,
        "detail": detail,
        "hint": HINTS[name] if status != "ok" else None,
    }
