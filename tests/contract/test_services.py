"""The test services themselves work (so CI proves them, not just skips past them)."""

from __future__ import annotations

import socket

import pytest

from tests.services import PostgresService, RedisService


@pytest.mark.postgres
def test_postgres_has_pgvector_with_hnsw(postgres_service: PostgresService) -> None:
    import psycopg
    from pgvector.psycopg import register_vector

    url = postgres_service.create_database("services_check")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3) NOT NULL)")
        conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")
        conn.cursor().executemany(
            "INSERT INTO items VALUES (%s, %s)",
            [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [0.7, 0.7, 0.0])],
        )
        conn.execute("SET enable_seqscan = off")  # make the planner use the index
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT id FROM items ORDER BY embedding <=> '[1,0.1,0]' LIMIT 2"
            )
        )
        rows = conn.execute(
            "SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 2", ([1.0, 0.1, 0.0],)
        ).fetchall()
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        server = conn.execute("SHOW server_version_num").fetchone()
    assert "items_embedding_idx" in plan
    assert [r[0] for r in rows] == [1, 3]
    assert version.fetchone() is not None
    assert server is not None
    assert int(server[0]) >= 180000
    # Each call makes a separate, empty database on the same server.
    other = postgres_service.create_database("services_check_2")
    with psycopg.connect(other) as conn:
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
    with pytest.raises(ValueError, match="identifier"):
        postgres_service.create_database("Robert'); DROP TABLE students;--")


@pytest.mark.redis
def test_redis_answers_and_restarts_on_its_port(own_redis: RedisService) -> None:
    def ping() -> bytes:
        with socket.create_connection(("127.0.0.1", own_redis.port), timeout=5) as s:
            s.sendall(b"SET k v\r\nGET k\r\nCONFIG GET save\r\n")
            return s.recv(200)

    assert own_redis.url == f"redis://127.0.0.1:{own_redis.port}/0"
    assert ping().startswith(b"+OK\r\n$1\r\nv\r\n*2\r\n$4\r\nsave\r\n$0\r\n")  # persistence off
    own_redis.kill()
    assert not own_redis.running
    with pytest.raises(ConnectionRefusedError):
        ping()
    own_redis.restart()
    assert own_redis.running
    assert ping().startswith(b"+OK")
