"""``tether memory``: long-term memory from the command line (over the SDK): remember,
search, forget, export, import, reindex."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    UrlOption,
    connect,
    output,
    print_json,
    print_ndjson,
    table,
)

app = typer.Typer(name="memory", help="Long-term memory.", no_args_is_help=True)

# How often the progress bar polls GET /v1/memory/stats (s).
_POLL_S = 0.5
#: Longest memory text shown in a search result row (characters).
_TEXT_MAX = 120
#: Lines per import request (the server reads one request whole, up to its body limit).
IMPORT_BATCH = 1000

NamespacesOption = Annotated[
    list[str] | None, typer.Option("--namespace", help="Namespace (repeatable: any of them).")
]


@app.command()
def remember(
    text: Annotated[str, typer.Argument(help="The memory text.")],
    namespace: Annotated[str, typer.Option(help="e.g. user/alice.")],
    kind: Annotated[
        str | None, typer.Option(help="fact, preference, episode, summary or your own.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A label (repeatable).")] = None,
    importance: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="0-1.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a memory (the same text in the same namespace is stored once)."""
    with connect(url, api_key) as client:
        made = client.remember(namespace, text, kind=kind, tags=tag, importance=importance)
    if as_json:
        print_json(made)
        return
    how = "already remembered" if made.get("deduplicated") else "remembered"
    output().out.print(f"{how} {made['id']} in {namespace}", markup=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Free text.")],
    namespace: Annotated[list[str], typer.Option(help="Namespace (repeatable: any of them).")],
    limit: Annotated[int, typer.Option(min=1, max=100, help="Results.")] = 10,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hybrid recall (keyword and meaning, fused, with conversation context, weighted by
    recency and importance): each result with its score and the features that moved it."""
    with connect(url, api_key) as client:
        results = client.recall(
            namespace if len(namespace) > 1 else namespace[0], query, limit=limit
        )
    if as_json:
        print_json([{"memory": r.memory, "score": r.score, "scores": r.scores} for r in results])
        return
    columns = [
        "score", "bm25", "vector", "context", "recency", "importance", "id", "namespace", "text",
    ]  # fmt: skip
    rows = [
        [
            f"{r.score:.4f}",
            *(_score(r.scores.get(k)) for k in ("bm25", "vector")),
            context_of(r.scores),
            *(_score(r.scores.get(k)) for k in ("recency", "importance")),
            r.memory.get("id", ""),
            r.memory.get("namespace", ""),
            _short(r.memory.get("text", "")),
        ]
        for r in results
    ]
    output().out.print(table(columns, rows, right=[c for c in columns[:6] if c != "context"]))


def context_of(scores: dict[str, Any]) -> str:
    """The conversation-context features that moved a hybrid result (docs/memory.md):
    ``neighbour=0.412, episode=0.620, subject, period``; empty when none did."""
    parts = [f"{k}={float(scores[k]):.3f}" for k in ("neighbour", "episode") if scores.get(k)]
    parts += [k for k in ("subject", "period") if scores.get(k)]
    return ", ".join(parts)


def _score(value: Any) -> str:
    return "" if value is None else f"{float(value):.3f}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 1] + "…"


@app.command()
def forget(
    memory_id: Annotated[str, typer.Argument(help="The memory's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a memory (a tombstone: hidden from search and reads, kept in its history)."""
    with connect(url, api_key) as client:
        client.forget(memory_id)
    if as_json:
        print_json({"id": memory_id, "forgotten": True})
        return
    output().out.print(f"forgot {memory_id}", markup=False)


@app.command()
def export(
    namespace: NamespacesOption = None,
    to: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    vectors: Annotated[
        bool, typer.Option(help="Include each memory's embedding (base64 float32).")
    ] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Export memories as NDJSON, the server's export format (what `memory import`
    reads); every namespace needs an admin key."""
    count = 0
    with connect(url, api_key) as client:
        lines = client.export_memories(namespace=namespace, vectors=vectors)
        if to is None:
            for memory in lines:
                print_ndjson(memory, flush=False)
                count += 1
            output().out.file.flush()
        else:
            with to.open("w", encoding="utf-8") as file:
                for memory in lines:
                    print_ndjson(memory, file, flush=False)
                    count += 1
    output().err.print(f"exported {count} memories", markup=False)


@app.command("import")
def import_(
    source: Annotated[
        str, typer.Argument(help="An NDJSON file (the export's shape); - for stdin.")
    ],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import memories from NDJSON (all or nothing per request of 1,000 lines; a memory
    already there, by id or by text in its namespace, is skipped)."""
    if source == "-":
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    else:
        path = Path(source)
        if not path.is_file():
            raise typer.BadParameter(f"no such file: {source}", param_hint="SOURCE")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    total: dict[str, Any] = {"imported": 0, "skipped": 0, "vectors": 0, "ids": []}
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        connect(url, api_key) as client,
        Progress(*columns, console=output().err, transient=True) as bar,
    ):
        task = bar.add_task("import", total=len(lines))
        for start in range(0, len(lines), IMPORT_BATCH):
            batch = lines[start : start + IMPORT_BATCH]
            done = client.import_memories(batch)
            for key in ("imported", "skipped", "vectors"):
                total[key] += int(done.get(key) or 0)
            total["ids"] += list(done.get("ids") or [])
            bar.advance(task, len(batch))
    if as_json:
        print_json(total)
        return
    output().out.print(
        f"imported {total['imported']}, skipped {total['skipped']}, "
        f"with vectors {total['vectors']}",
        markup=False,
    )


@app.command()
def reindex(
    everything: Annotated[
        bool, typer.Option("--all", help="Re-embed every memory, not only stale ones.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the backlog to drain.")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many s.")] = 3600,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-embed memories after an embedding-model change, with a progress bar (an admin
    key).

    Queues an embedding job for each memory without a vector of the server's current
    model (or every memory with --all); the server's indexer does the work. Exit 1 when
    the backlog has not drained within --timeout.
    """
    out = output()
    with connect(url, api_key) as client:
        queued = client.reindex_memories(everything=everything)
        stats = client.memory_stats()
        total = max(stats["index_backlog"], 1)
        dead_before = stats["dead_letters"]
        if wait and stats["index_backlog"]:
            columns = (
                TextColumn(f"embedding with {queued['embedding_model']}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            deadline = time.monotonic() + timeout
            with Progress(*columns, console=out.err) as bar:
                task = bar.add_task("reindex", total=total)
                while stats["index_backlog"] and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                    stats = client.memory_stats()
                    total = max(total, stats["index_backlog"])
                    bar.update(task, total=total, completed=total - stats["index_backlog"])
    outcome = {
        "queued": queued["queued"],
        "embedding_model": queued["embedding_model"],
        "index_backlog": stats["index_backlog"],
        "new_dead_letters": stats["dead_letters"] - dead_before,
    }
    if as_json:
        print_json(outcome)
    else:
        out.out.print(
            f"queued {outcome['queued']} memories for {outcome['embedding_model']}; "
            f"backlog {outcome['index_backlog']}, new dead letters {outcome['new_dead_letters']}",
            markup=False,
        )
    if stats["index_backlog"] and wait:
        raise typer.Exit(code=1)
