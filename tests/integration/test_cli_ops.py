"""The operator CLI (``tether sessions|logs|replay|diagnostics|monitor|stats|doctor|memory``)
as a user runs it: a subprocess with ``TETHER_URL`` set, against real servers.

Outputs are checked exactly against what the tests posted: the ``--json`` documents in
full, human tables cell by cell (a wide ``COLUMNS`` keeps Rich from wrapping). The
monitor runs in a pseudo-terminal, as in an operator's shell; doctor meets a stopped
Redis and a dead embeddings API.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.services import RedisService
from tether.testing import TetherServer, wait_until

TETHER = [sys.executable, "-m", "tether"]
WIDE = {"COLUMNS": "220", "LINES": "80", "NO_COLOR": "1", "TERM": "xterm"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>78]|\r")


def cli(
    url: str, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``tether ARGS`` with ``TETHER_URL=url``."""
    env = {**os.environ, **WIDE, "TETHER_URL": url}
    env.pop("TETHER_API_KEY", None)
    return subprocess.run(
        [*TETHER, *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin if stdin is not None else "",
        timeout=timeout,
    )


def ok(url: str, *args: str, stdin: str | None = None) -> str:
    done = cli(url, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def rows(text: str) -> list[list[str]]:
    """The data rows of Rich tables (lines between │ bars), as stripped cells."""
    return [
        [c.strip() for c in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.strip().startswith("│")
    ]


def post(http: httpx.Client, path: str, body: Any) -> Any:
    r = http.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


T0 = datetime(2026, 2, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def url(server: TetherServer) -> str:
    """The module's server, seeded: sessions ops-1..ops-3 of agent ops-bot."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i, agent in ((1, "ops-bot"), (2, "ops-bot"), (3, "ops-bot")):
            post(http, "/v1/sessions", {"id": f"ops-{i}", "agent": agent})
            time.sleep(0.01)  # distinct created_at: a defined newest-first order
        post(
            http,
            "/v1/sessions/ops-2/events",
            {
                "events": [
                    {"kind": "llm", "name": "plan", "input_tokens": 150, "output_tokens": 15,
                     "cost_usd": 0.5},
                    {"kind": "tool", "name": "search", "status": "error", "cost_usd": 0.25},
                ]
            },
        )  # fmt: skip
        post(http, "/v1/sessions/ops-2/end", {"status": "failed"})
    return server.url


# -- sessions ----------------------------------------------------------------------------


def test_sessions_list_exact_json_and_table(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        expected = http.get("/v1/sessions", params={"agent": "ops-bot"}).json()["data"]["items"]
    listed = json.loads(ok(url, "sessions", "list", "--agent", "ops-bot", "--json"))
    assert listed == expected
    assert [s["id"] for s in listed] == ["ops-3", "ops-2", "ops-1"]

    human = ok(url, "sessions", "list", "--agent", "ops-bot")
    created = {s["id"]: s["created_at"] for s in expected}
    assert rows(human) == [
        ["ops-3", "ops-bot", "active", "0", "0", "0", "$0.0000", created["ops-3"]],
        ["ops-2", "ops-bot", "failed", "2", "1", "165", "$0.7500", created["ops-2"]],
        ["ops-1", "ops-bot", "active", "0", "0", "0", "$0.0000", created["ops-1"]],
    ]
    assert human.splitlines()[1].split() == [
        "┃", "id", "┃", "agent", "┃", "status", "┃", "events", "┃", "errors", "┃", "tokens",
        "┃", "cost", "┃", "created_at", "┃",
    ]  # fmt: skip
    assert human.splitlines()[-1] == "3 sessions"
    # Filters and --limit (newest first)
    failed = json.loads(ok(url, "sessions", "list", "--status", "failed", "--json"))
    assert [s["id"] for s in failed] == ["ops-2"]
    newest = json.loads(ok(url, "sessions", "list", "--agent", "ops-bot", "--limit", "2", "--json"))
    assert [s["id"] for s in newest] == ["ops-3", "ops-2"]
    searched = json.loads(ok(url, "sessions", "list", "--search", "OPS-BOT 2", "--json"))
    assert [s["id"] for s in searched] == ["ops-2"]  # both words, any case, in id/agent
    later = ok(url, "sessions", "list", "--agent", "ops-bot", "--since", "2099-01-01T00:00:00Z")
    assert rows(later) == []
    assert later.splitlines()[-1] == "0 sessions"


def test_the_console_is_injected(url: str) -> None:
    """In process, a command writes to the consoles it is given (tether.cli.common.injected)."""
    import io

    from rich.console import Console
    from typer.testing import CliRunner

    from tether.cli.common import Output, injected
    from tether.cli.main import app

    out, err = io.StringIO(), io.StringIO()
    given = Output(out=Console(file=out, width=200), err=Console(file=err, width=200))
    with injected(given):
        result = CliRunner().invoke(app, ["sessions", "list", "--agent", "ops-bot", "--url", url])
    assert result.exit_code == 0, result.output
    assert [r[:3] for r in rows(out.getvalue())] == [
        ["ops-3", "ops-bot", "active"],
        ["ops-2", "ops-bot", "failed"],
        ["ops-1", "ops-bot", "active"],
    ]
    assert result.stdout == ""  # nothing went around the injected console
    with injected(given):
        missing = CliRunner().invoke(app, ["sessions", "show", "nope", "--url", url])
    assert missing.exit_code == 1
    assert err.getvalue() == "tether: 404 not_found: session 'nope' not found\n"


def test_sessions_show_end_delete_export_and_errors(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-x", "agent": "ops-x-bot", "title": "export me"})
        post(http, "/v1/sessions/ops-x/goals", {"id": "g1", "description": "find flights"})
        for patch in ({"step": 1}, {"step": 2}):
            assert http.patch("/v1/sessions/ops-x/state", json=patch).status_code == 200
        events = [{"kind": "log", "name": f"e{i}"} for i in range(1, 1201)]  # > one page
        post(http, "/v1/sessions/ops-x/events", {"events": events[:1000]})
        post(http, "/v1/sessions/ops-x/events", {"events": events[1000:]})

    shown = json.loads(ok(url, "sessions", "show", "ops-x", "--json"))
    assert (shown["id"], shown["title"], shown["state"]) == (
        "ops-x",
        "export me",
        {"state": {"step": 2}, "version": 2},
    )
    assert [g["id"] for g in shown["goals"]] == ["g1"]
    human = ok(url, "sessions", "show", "ops-x")
    assert ["title", "export me"] in rows(human)
    assert ["events", "1200"] in rows(human)
    assert ["g1", "find flights", "open", "0", "0"] in rows(human)
    assert 'state (version 2):\n{\n  "step": 2\n}' in human

    lines = [json.loads(line) for line in ok(url, "sessions", "export", "ops-x").splitlines()]
    assert [line["type"] for line in lines[:4]] == [
        "session",
        "goal",
        "state_version",
        "state_version",
    ]
    assert lines[0]["id"] == "ops-x"
    assert "goals" not in lines[0]
    assert [(v["version"], v["patch"]) for v in lines[2:4]] == [(1, {"step": 1}), (2, {"step": 2})]
    assert [e["seq"] for e in lines[4:]] == list(range(1, 1201))
    assert {e["type"] for e in lines[4:]} == {"event"}

    ended = json.loads(ok(url, "sessions", "end", "ops-x", "--status", "abandoned", "--json"))
    assert ended["status"] == "abandoned"
    assert (
        ok(url, "sessions", "end", "ops-x", "--status", "abandoned") == "ended ops-x: abandoned\n"
    )
    again = cli(url, "sessions", "end", "ops-x", "--status", "completed")
    assert again.returncode == 1
    assert again.stderr == "tether: 409 conflict: session 'ops-x' already ended as 'abandoned'\n"

    refused = cli(url, "sessions", "delete", "ops-x", stdin="n\n")
    assert refused.returncode == 1
    deleted = json.loads(ok(url, "sessions", "delete", "ops-x", "--yes", "--json"))
    assert deleted == {"id": "ops-x", "deleted_events": 1200}
    missing = cli(url, "sessions", "show", "ops-x")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr == "tether: 404 not_found: session 'ops-x' not found\n"


def test_usage_errors_exit_2_and_an_absent_server_exits_1(url: str) -> None:
    bad = cli(url, "logs", "--since", "5 fortnights")
    assert bad.returncode == 2
    assert "neither a duration" in bad.stderr
    assert cli(url, "sessions", "frobnicate").returncode == 2
    down = cli(f"http://127.0.0.1:{_free_port()}", "sessions", "list")
    assert down.returncode == 1
    assert down.stderr.startswith("tether: cannot reach http://127.0.0.1:")
    assert "tether serve" in down.stderr
    assert len(down.stderr.splitlines()) == 1


# -- logs --------------------------------------------------------------------------------


def test_logs_filters(url: str) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=2), now - timedelta(minutes=5)
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-logs"})
        post(
            http,
            "/v1/sessions/ops-logs/events",
            {
                "events": [
                    {"kind": "llm", "name": "plan", "started_at": iso(old), "duration_ms": 120},
                    {"kind": "tool", "name": "search", "started_at": iso(old),
                     "status": "error", "level": "error", "output": {"error": "rate limited"}},
                    {"kind": "log", "name": "note", "level": "debug", "started_at": iso(recent),
                     "input": "just a note"},
                    {"kind": "tool", "name": "fetch", "level": "warning",
                     "started_at": iso(recent), "duration_ms": 33.5},
                ]
            },
        )  # fmt: skip
    base = ("logs", "--session", "ops-logs")
    everything = ok(url, *base).splitlines()
    assert everything == [
        f"{iso(old)} ops-logs#1 INFO llm/plan ok 120.0ms",
        f"{iso(old)} ops-logs#2 ERROR tool/search error rate limited",
        f"{iso(recent)} ops-logs#3 DEBUG log/note ok just a note",
        f"{iso(recent)} ops-logs#4 WARNING tool/fetch ok 33.5ms",
    ]

    def seqs(*args: str) -> list[int]:
        return [json.loads(line)["seq"] for line in ok(url, *base, *args, "--json").splitlines()]

    assert seqs("--kind", "tool") == [2, 4]
    assert seqs("--kind", "tool", "--kind", "log") == [2, 3, 4]
    assert seqs("--level", "warning") == [2, 4]
    assert seqs("--level", "info") == [1, 2, 4]  # no level counts as info
    assert seqs("--status", "error") == [2]
    assert seqs("--since", "30m") == [3, 4]
    assert seqs("--since", iso(old - timedelta(seconds=1)), "--until", "1h") == [1, 2]
    assert seqs("--lines", "2") == [3, 4]
    assert seqs("--name", "fetch") == [4]
    assert ok(url, *base, "--kind", "tool", "-n", "1") == (
        f"{iso(recent)} ops-logs#4 WARNING tool/fetch ok 33.5ms\n"
    )


def test_logs_follow_picks_up_new_events(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-follow"})
        post(http, "/v1/sessions/ops-follow/events", {"kind": "log", "name": "before"})
        env = {**os.environ, **WIDE, "TETHER_URL": url}
        with subprocess.Popen(
            [*TETHER, "logs", "--kind", "tool", "--follow", "--json", "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        ) as proc:
            assert proc.stdout is not None
            lines = Lines(proc.stdout.fileno())
            try:
                lines.read(until=lambda: False, timeout=3)  # the tail, if any
                before = len(lines.items)
                post(http, "/v1/sessions/ops-follow/events", {"kind": "log", "name": "skipped"})
                post(http, "/v1/sessions/ops-follow/events", {"kind": "tool", "name": "followed"})
                lines.read(
                    until=lambda: any(e["name"] == "followed" for e in lines.items), timeout=10
                )
                new = lines.items[before:]
                assert [(e["session_id"], e["kind"], e["name"]) for e in new] == [
                    ("ops-follow", "tool", "followed")
                ]
            finally:
                proc.send_signal(signal.SIGINT)
                assert proc.wait(10) == 0


class Lines:
    """JSON lines read from a pipe's file descriptor as they come."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.items: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # monotonic time each item was read

    def read(self, *, until: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.buffer += chunk
            *done, self.buffer = self.buffer.split(b"\n")
            parsed = [json.loads(line) for line in done if line.strip()]
            self.items += parsed
            self.arrivals += [time.monotonic()] * len(parsed)


# -- replay ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed(url: str) -> str:
    """Session ops-replay: events at T0, +1 s, +3 s, +3.5 s, and +1 h."""
    offsets = [0.0, 1.0, 3.0, 3.5]
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-replay"})
        events = [
            {"kind": "log", "name": f"step{i}", "started_at": iso(T0 + timedelta(seconds=s))}
            for i, s in enumerate(offsets, start=1)
        ]
        events.append({"kind": "log", "name": "late", "started_at": iso(T0 + timedelta(hours=1))})
        post(http, "/v1/sessions/ops-replay/events", {"events": events})
    return "ops-replay"


def test_replay_orders_and_paces_events(url: str, replayed: str) -> None:
    env = {**os.environ, **WIDE, "TETHER_URL": url}
    started = time.monotonic()
    with subprocess.Popen(
        [*TETHER, "replay", replayed, "--speed", "4", "--max-wait", "1", "--json"],
        stdout=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        lines = Lines(proc.stdout.fileno())
        lines.read(until=lambda: False, timeout=30)  # to the end of the output
        assert proc.wait(30) == 0
    wall = time.monotonic() - started
    arrivals = list(zip(lines.arrivals, lines.items, strict=True))
    # Gaps 1, 2, 0.5 s and 1 h, divided by 4: 0.25, 0.5, 0.125, and 900 s capped at 1.
    assert [(a["event"]["seq"], a["offset_s"]) for _, a in arrivals] == [
        (1, 0.0), (2, 0.25), (3, 0.75), (4, 0.875), (5, 1.875),
    ]  # fmt: skip
    # Pacing, as lower bounds: each event no earlier than its offset after the first.
    first = arrivals[0][0]
    for at, a in arrivals:
        assert at - first >= a["offset_s"] - 0.1
    assert wall >= 1.875

    # --from and the human form (the 1 h gap capped at 0.1 s)
    human = ok(url, "replay", replayed, "--from", "3", "--speed", "100", "--max-wait", "0.1")
    start = iso(T0 + timedelta(seconds=3))
    half = iso(T0 + timedelta(seconds=3.5))
    late = iso(T0 + timedelta(hours=1))
    assert human.splitlines() == [
        f"+   0.000s {start} {replayed}#3 INFO log/step3 ok",
        f"+   0.005s {half} {replayed}#4 INFO log/step4 ok",
        f"+   0.105s {late} {replayed}#5 INFO log/late ok",
    ]


def test_replay_step_by_step_waits_for_enter(url: str, replayed: str) -> None:
    done = cli(url, "replay", replayed, "--step-by-step", "--json", stdin="\n\n")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["event"]["seq"] for line in done.stdout.splitlines()] == [1, 2]
    assert done.stderr.count("[Enter]") == 3  # the third prompt met the end of input


# -- diagnostics -------------------------------------------------------------------------


def test_diagnostics_exact_numbers(url: str) -> None:
    """llm/plan: 4 calls of 100-400 ms, 100 in / 10 out tokens and $0.125 each; tool/search:
    3 ok (10, 20, 30 ms) and 1 error (50 ms, "rate limited"), and a span still running.

    Percentiles interpolate linearly (numpy's default): for [100, 200, 300, 400], p50 at
    rank 1.5 = 250 and p95 at rank 2.85 = 300 + 0.85 * 100 = 385; for [10, 20, 30, 50],
    p50 = 25 and p95 = 30 + 0.85 * 20 = 47.
    """
    at = [iso(T0 + timedelta(seconds=i)) for i in range(10)]
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-diag", "agent": "diag-bot"})
        llm = [
            {"kind": "llm", "name": "plan", "duration_ms": d, "started_at": at[i],
             "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.125}
            for i, d in enumerate((100, 200, 300, 400))
        ]  # fmt: skip
        tools = [
            {"kind": "tool", "name": "search", "duration_ms": d, "started_at": at[4 + i]}
            for i, d in enumerate((10, 20, 30))
        ]
        tools.append(
            {"kind": "tool", "name": "search", "duration_ms": 50, "status": "error",
             "started_at": at[7], "output": {"error": "rate limited"}}
        )  # fmt: skip
        tools.append(
            {"kind": "tool", "name": "search", "status": "running", "span_id": "sp-open",
             "started_at": at[8]}
        )  # fmt: skip
        post(http, "/v1/sessions/ops-diag/events", {"events": llm + tools})

    data = json.loads(ok(url, "diagnostics", "ops-diag", "--json"))
    assert data["session_id"] == "ops-diag"
    by = {(c["kind"], c["name"]): c for c in data["components"]}
    assert set(by) == {("llm", "plan"), ("tool", "search")}
    plan, search = by[("llm", "plan")], by[("tool", "search")]
    assert {k: plan[k] for k in _NUMBERS} == {
        "count": 4, "running": 0, "errors": 0, "error_rate": 0, "p50_ms": 250,
        "p95_ms": 385, "max_ms": 400, "input_tokens": 400, "output_tokens": 40,
        "cost_usd": 0.5,
    }  # fmt: skip
    assert {k: search[k] for k in _NUMBERS} == {
        "count": 4, "running": 1, "errors": 1, "error_rate": 0.25, "p50_ms": 25,
        "p95_ms": 47, "max_ms": 50, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0,
    }  # fmt: skip
    assert [(e["message"], e["session_id"], e["seq"]) for e in search["last_errors"]] == [
        ("rate limited", "ops-diag", 8)
    ]
    human = ok(url, "diagnostics", "ops-diag")
    table = rows(human)
    assert table[:3] == [
        ["llm", "plan", "4", "0", "0", "0.0%", "250.0", "385.0", "400.0", "400", "40", "$0.5000"],
        ["tool", "search", "4", "1", "1", "25.0%", "25.0", "47.0", "50.0", "0", "0", "$0.0000"],
        ["total", "", "8", "1", "1", "12.5%", *table[2][6:9], "400", "40", "$0.5000"],
    ]
    assert ["tool/search", at[7], "ops-diag#8", "rate limited"] in table
    assert human.startswith("diagnostics: session ops-diag")

    # Across sessions: the same numbers for this agent's sessions in the window.
    window = ("--since", iso(T0), "--until", iso(T0 + timedelta(minutes=1)))
    everywhere = json.loads(ok(url, "diagnostics", *window, "--agent", "diag-bot", "--json"))
    assert everywhere["session_id"] is None
    assert everywhere["sessions"] == 1
    assert everywhere["components"] == data["components"]


_NUMBERS = (
    "count", "running", "errors", "error_rate", "p50_ms", "p95_ms", "max_ms", "input_tokens",
    "output_tokens", "cost_usd",
)  # fmt: skip


# -- memory and stats --------------------------------------------------------------------


def test_memory_commands_round_trip(url: str, tmp_path: Any) -> None:
    made = json.loads(
        ok(url, "memory", "remember", "Ops likes green tea", "--namespace", "ops/mem",
           "--kind", "preference", "--tag", "drinks", "--importance", "0.9", "--json")
    )  # fmt: skip
    memory = made["memory"]
    assert (memory["kind"], memory["tags"], memory["importance"]) == ("preference", ["drinks"], 0.9)
    assert ok(url, "memory", "remember", "Ops likes green tea", "--namespace", "ops/mem") == (
        f"already remembered {made['id']} in ops/mem\n"
    )
    ok(url, "memory", "remember", "Ops lives in Lyon", "--namespace", "ops/mem")
    found = json.loads(ok(url, "memory", "search", "green tea", "--namespace", "ops/mem", "--json"))
    assert found[0]["memory"]["id"] == made["id"]
    assert {"bm25", "vector", "recency", "importance"} <= set(found[0]["scores"])
    human = rows(ok(url, "memory", "search", "green tea", "--namespace", "ops/mem"))
    top = found[0]
    context = [
        *(f"{k}={top['scores'][k]:.3f}" for k in ("neighbour", "episode") if top["scores"][k]),
        *(k for k in ("subject", "period") if top["scores"][k]),
    ]
    assert human[0] == [
        f"{top['score']:.4f}",
        *(f"{top['scores'][k]:.3f}" for k in ("bm25", "vector")),
        *([", ".join(context)] if context else []),
        *(f"{top['scores'][k]:.3f}" for k in ("recency", "importance")),
        made["id"],
        "ops/mem",
        "Ops likes green tea",
    ]
    exported = ok(url, "memory", "export", "--namespace", "ops/mem").splitlines()
    assert sorted(json.loads(line)["text"] for line in exported) == [
        "Ops likes green tea",
        "Ops lives in Lyon",
    ]
    dump = tmp_path / "mem.ndjson"
    ok(url, "memory", "export", "--namespace", "ops/mem", "--output", str(dump))
    assert dump.read_text().splitlines() == exported
    assert json.loads(ok(url, "memory", "import", str(dump), "--json"))["skipped"] == 2
    fresh = tmp_path / "fresh.ndjson"
    fresh.write_text(json.dumps({"namespace": "ops/imported", "text": "Imported by the CLI"}))
    assert ok(url, "memory", "import", str(fresh)) == "imported 1, skipped 0, with vectors 0\n"
    assert ok(url, "memory", "forget", made["id"]) == f"forgot {made['id']}\n"
    assert ok(url, "memory", "forget", made["id"]) == f"forgot {made['id']}\n"  # idempotent
    gone = cli(url, "memory", "forget", "no-such-memory")
    assert gone.returncode == 1
    assert gone.stderr.startswith("tether: 404 not_found: ")


def test_stats(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        expected = http.get("/v1/stats").json()["data"]
    assert json.loads(ok(url, "stats", "--json")) == expected
    table = rows(ok(url, "stats"))
    assert ["sessions", "total", str(expected["sessions"]["total"])] in table
    assert ["sessions", "failed", str(expected["sessions"]["by_status"]["failed"])] in table


def test_every_json_output_parses(url: str, replayed: str) -> None:
    """Every command that prints data, with --json: one JSON document, or NDJSON lines."""
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-json"})
        post(http, "/v1/sessions/ops-json/events", {"kind": "log", "name": "hello"})
    memory = json.loads(
        ok(url, "memory", "remember", "json check", "--namespace", "ops/j", "--json")
    )
    documents = [
        ("sessions", "list"),
        ("sessions", "show", "ops-json"),
        ("diagnostics", "ops-json"),
        ("diagnostics",),
        ("stats",),
        ("doctor",),
        ("monitor", "ops-json"),
        ("monitor",),
        ("memory", "search", "json", "--namespace", "ops/j"),
        ("sessions", "end", "ops-json"),
    ]
    for args in documents:
        done = cli(url, *args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        json.loads(done.stdout)  # one document, nothing else on stdout
    streams = [
        ("logs", "--session", "ops-json", "--json"),
        ("replay", replayed, "--speed", "1000", "--max-wait", "0", "--json"),
        ("sessions", "export", "ops-json"),
        ("memory", "export", "--namespace", "ops/j"),
    ]
    for args in streams:
        done = cli(url, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert [json.loads(line) for line in done.stdout.splitlines()], args
    forgot = cli(url, "memory", "forget", memory["id"], "--json")
    assert json.loads(forgot.stdout) == {"id": memory["id"], "forgotten": True}
    deleted = cli(url, "sessions", "delete", "ops-json", "--yes", "--json")
    assert json.loads(deleted.stdout) == {"id": "ops-json", "deleted_events": 1}


# -- monitor in a pseudo-terminal --------------------------------------------------------


class Screen:
    """A child process on a pseudo-terminal, its output read as text without ANSI codes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 80, 220, 0, 0))
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.text = ""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            self.text += ANSI.sub("", chunk.decode(errors="replace"))

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float) -> bool:
        """Whether ``pattern`` (a regex) shows after offset ``after`` within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            if re.search(pattern, self.text[after:]):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.read(min(left, 0.05))

    def close(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        os.close(self.master)
        return code


def running_section(text: str) -> str:
    """The rows of the running-spans table in the latest frame drawn."""
    header = text.rindex("elapsed")  # the running table's header row
    return text[header : text.index("events", header)]


def test_monitor_follow_shows_events_and_running_spans_live(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        post(http, "/v1/sessions", {"id": "ops-mon", "agent": "mon-bot"})
        post(http, "/v1/sessions/ops-mon/events", {"kind": "log", "name": "warm-up"})
        env = {**os.environ, **WIDE, "TETHER_URL": url}
        env.pop("NO_COLOR")
        screen = Screen([*TETHER, "monitor", "ops-mon", "--follow"], env)
        try:
            assert screen.wait_for(r"session ops-mon\s+agent mon-bot", timeout=30), screen.text
            assert screen.wait_for(r"log\s*│\s*warm-up", timeout=5), screen.text

            mark = len(screen.text)
            post(http, "/v1/sessions/ops-mon/events", {"kind": "message", "name": "hello-live"})
            assert screen.wait_for(r"message\s*│\s*hello-live", after=mark, timeout=1.0), (
                screen.text[mark:]
            )

            # A running span shows in the running table, with its elapsed time, before its
            # final event is posted.
            mark = len(screen.text)
            started = iso(datetime.now(UTC))
            post(
                http,
                "/v1/sessions/ops-mon/events",
                {"kind": "tool", "name": "slow-step", "status": "running", "span_id": "sp-live",
                 "started_at": started},
            )  # fmt: skip
            running = r"sp-live\s*│\s*tool\s*│\s*slow-step\s*│\s*\d+\.\ds"
            assert screen.wait_for(running, after=mark, timeout=1.0), screen.text[mark:]
            mark = len(screen.text)
            post(
                http,
                "/v1/sessions/ops-mon/events",
                {"kind": "tool", "name": "slow-step", "status": "ok", "span_id": "sp-live",
                 "started_at": started, "duration_ms": 1234.5},
            )  # fmt: skip
            final = r"tool\s*│\s*slow-step\s*│\s*ok\s*│\s*1234\.5"
            assert screen.wait_for(final, after=mark, timeout=1.0), screen.text[mark:]
            # Once ended, the span leaves the running table: the latest frame lacks it.
            screen.wait_for(r"(?!)", timeout=0.6)  # let a few frames pass
            assert "sp-live" not in running_section(screen.text)
        finally:
            code = screen.close()
        assert code == 0


def test_monitor_without_a_session_lists_active_sessions(url: str) -> None:
    snapshot = json.loads(ok(url, "monitor", "--json"))
    ids = [s["id"] for s in snapshot]
    assert {"ops-1", "ops-3"} <= set(ids)
    assert "ops-2" not in ids  # failed: not active
    assert all(s["status"] == "active" for s in snapshot)
    env = {**os.environ, **WIDE, "TETHER_URL": url}
    screen = Screen([*TETHER, "monitor", "--follow"], env)
    try:
        assert screen.wait_for(r"active sessions \(\d+\)", timeout=30), screen.text
        mark = len(screen.text)
        with httpx.Client(base_url=url, timeout=30) as http:
            post(http, "/v1/sessions", {"id": "ops-new-live", "agent": "fresh-bot"})
        assert screen.wait_for(r"ops-new-live\s*│\s*fresh-bot", after=mark, timeout=5), screen.text[
            mark:
        ]
    finally:
        assert screen.close() == 0


# -- doctor ------------------------------------------------------------------------------


def test_doctor_on_a_healthy_server(url: str) -> None:
    report = json.loads(ok(url, "doctor", "--json"))
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names[:4] == ["server", "store", "bus", "embedder"]
    assert all(c["status"] == "ok" for c in report["checks"])
    human = ok(url, "doctor")
    assert [r[:3] for r in rows(human)][:4] == [
        ["server", "http", "ok"],
        ["store", report["checks"][1]["kind"], "ok"],
        ["bus", report["checks"][2]["kind"], "ok"],
        ["embedder", report["checks"][3]["kind"], "ok"],
    ]
    assert human.splitlines()[-1] == "all checks ok"


def test_doctor_reports_a_server_that_does_not_answer() -> None:
    done = cli(f"http://127.0.0.1:{_free_port()}", "doctor", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    [check] = report["checks"]
    assert (check["name"], check["status"]) == ("server", "down")
    assert "Connection refused" in check["detail"]
    assert "tether serve" in check["hint"]


@pytest.mark.postgres
@pytest.mark.redis
def test_doctor_reports_a_stopped_redis(
    replica_factory: Callable[..., list[TetherServer]], redis_service: RedisService
) -> None:
    [srv] = replica_factory(n=1)
    assert cli(srv.url, "doctor", "--wait", "20").returncode == 0
    redis_service.stop()
    try:

        def bus_down() -> bool:
            deps = srv.get("/v1/deps")["dependencies"]
            return any(d["name"] == "bus" and d["status"] == "down" for d in deps)

        wait_until(bus_down, 20)
        done = cli(srv.url, "doctor", "--json")
        assert done.returncode == 1, done.stdout
        checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
        assert checks["bus"]["status"] == "down"
        assert checks["bus"]["kind"] == "redis"
        assert "Redis" in checks["bus"]["detail"]
        assert checks["bus"]["hint"]
        assert checks["store"]["status"] == "ok"
        human = cli(srv.url, "doctor")
        assert human.returncode == 1
        [bus] = [r for r in rows(human.stdout) if r[0] == "bus"]
        assert bus[2] == "down"
        assert bus[5]
        assert human.stdout.splitlines()[-1] == "some checks are not ok"
    finally:
        redis_service.start()


def test_doctor_reports_a_dead_embedder(server_factory: Callable[..., TetherServer]) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    srv = server_factory(env={"TETHER_EMBEDDER": f"openai:minilm@{dead}"})
    done = cli(srv.url, "doctor", "--json", "--wait", "20")
    assert done.returncode == 1, done.stdout
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["embedder"]["status"] == "down"
    assert checks["embedder"]["hint"]
    assert checks["store"]["status"] == "ok"
    human = cli(srv.url, "doctor")
    assert human.returncode == 1
    [embedder] = [r for r in rows(human.stdout) if r[0] == "embedder"]
    assert embedder[2] == "down"
    assert embedder[5]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
