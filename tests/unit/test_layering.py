"""SQL lives only inside ``store/<backend>/`` (ARCHITECTURE §9).

``make lint`` checks the imports (``lint-imports``: no ``sqlite3``, ``psycopg`` or
Alembic outside the backends, the layers, no cycles). What an import contract cannot see
is SQL text built in a string and handed to something else to run; this test reads every
string in ``src/tether`` outside the backends (docstrings aside) and fails on any that is
a SQL statement.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tether"
BACKENDS = (SRC / "store" / "sqlite", SRC / "store" / "postgres")

# A statement keyword at the start (upper case, as all of Tether's SQL is written), then
# what that statement has to contain.
_SQL = re.compile(
    r"^\s*(?:"
    r"SELECT\b.+\bFROM\b|INSERT\s+(?:OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|"
    r"DELETE\s+FROM\b|CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIRTUAL|EXTENSION)\b|"
    r"ALTER\s+TABLE\b|DROP\s+(?:TABLE|INDEX)\b|PRAGMA\s+\w+|WITH\s+\w+\s+AS\s*\(|"
    r"BEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b|SAVEPOINT\s+\w+"
    r")",
    re.DOTALL,
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def sql_strings(source: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of each string (or f-string part) in ``source`` that is SQL."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and _SQL.search(node.value)
        ):
            yield node.lineno, node.value


def test_the_detector_finds_sql_and_spares_prose() -> None:
    found = list(
        sql_strings(
            'q = "SELECT pk FROM memories WHERE id=?"\n'
            'w = f"UPDATE sessions SET title={x} WHERE pk=1"\n'
            'c = "CREATE TABLE t (a int)"\n'
            'doc = "Select the memories you want from the list"\n'
            'def f():\n    """SELECT * FROM in a docstring is prose."""\n'
        )
    )
    assert sorted(line for line, _ in found) == [1, 2, 3]


def test_no_sql_outside_the_store_backends() -> None:
    offenders: list[str] = []
    checked = 0
    for path in sorted(SRC.rglob("*.py")):
        if any(path.is_relative_to(backend) for backend in BACKENDS):
            continue
        checked += 1
        for line, text in sql_strings(path.read_text()):
            offenders.append(f"{path.relative_to(SRC)}:{line}: {text.strip()[:80]}")
    assert checked > 50
    assert offenders == []
