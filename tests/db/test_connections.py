"""Connections: a Database from connect() opens a new connection in place of a lost one (a read is run once
more; a write is never re-sent), the application's own connection is never replaced, and a transaction belongs
to the thread that opened it."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest

import pgembed
from pgembed.errors import ConcurrentUseError, ConnectionLostError
from tests.helpers import unit_vectors

DIM = 16
ROWS = 200


@pytest.fixture
def docs(db: pgembed.Database) -> np.ndarray:
    x = unit_vectors(ROWS, DIM, seed=3)
    docs = db.create_collection("docs", DIM)
    docs.ingest(np.arange(ROWS), x)
    docs.add_codec("bq2", "bq2")
    return x


def lose(db: pgembed.Database, sql_conn: psycopg.Connection) -> int:
    """End the Database's server process, as a server restart does; the connection learns of it on its next
    statement."""
    pid = db.conn.info.backend_pid
    sql_conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    return pid


def test_a_read_on_a_lost_connection_runs_again_on_a_new_one(db: pgembed.Database, docs: np.ndarray,
                                                             sql_conn: psycopg.Connection) -> None:
    collection = db.collection("docs")
    before = lose(db, sql_conn)
    assert collection.search(docs[7], 3).ids[0] == 7
    assert db.conn.info.backend_pid != before
    lose(db, sql_conn)
    assert collection.search_batch(docs[:4], 3).ids[:, 0].tolist() == [0, 1, 2, 3]
    lose(db, sql_conn)
    assert [c.name for c in db.collections()] == ["docs"]
    lose(db, sql_conn)
    assert collection.count() == ROWS


def test_a_write_on_a_lost_connection_is_not_sent_again(db: pgembed.Database, docs: np.ndarray,
                                                        sql_conn: psycopg.Connection) -> None:
    collection = db.collection("docs")
    new = unit_vectors(2, DIM, seed=4)
    lose(db, sql_conn)
    with pytest.raises(psycopg.OperationalError):
        collection.ingest([ROWS], new[:1])
    assert sql_conn.execute("SELECT count(*) FROM docs").fetchone() == (ROWS,)
    assert collection.ingest([ROWS + 1], new[1:]) == 1  # the next call opens a new connection
    assert sql_conn.execute("SELECT count(*) FROM docs").fetchone() == (ROWS + 1,)


def test_a_read_inside_the_applications_transaction_is_not_run_again(db: pgembed.Database, docs: np.ndarray,
                                                                     sql_conn: psycopg.Connection) -> None:
    collection = db.collection("docs")
    with pytest.raises(psycopg.OperationalError), db.transaction():
        lose(db, sql_conn)
        collection.search(docs[0], 3)
    assert collection.search(docs[0], 3).ids[0] == 0


def test_the_applications_own_connection_is_never_replaced(dsn: str, docs: np.ndarray,
                                                           sql_conn: psycopg.Connection) -> None:
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        db = pgembed.Database(conn)
        collection = db.collection("docs")
        lose(db, sql_conn)
        with pytest.raises(psycopg.OperationalError):
            collection.search(docs[0], 3)
        with pytest.raises(ConnectionLostError, match="Hand pgembed a new connection"):
            collection.search(docs[0], 3)
    finally:
        conn.close()


def test_no_new_connection_in_another_state_than_the_lost_one(db: pgembed.Database, docs: np.ndarray,
                                                              sql_conn: psycopg.Connection) -> None:
    collection = db.collection("docs")
    db.conn.execute("SET search_path = pg_catalog, public")
    lose(db, sql_conn)
    for _ in range(2):
        with pytest.raises(ConnectionLostError, match="search_path"):
            collection.search(docs[0], 3)


def test_a_setting_made_after_pgembeds_last_write_is_seen_on_a_loss(db: pgembed.Database, docs: np.ndarray,
                                                                     sql_conn: psycopg.Connection) -> None:
    # The state a write of pgembed's began in is forgotten when it ends: what the application SETs afterwards is
    # the state a new connection must match.
    collection = db.collection("docs")
    collection.ingest([ROWS + 7], docs[:1])
    db.conn.execute("SET search_path = pg_catalog, public")
    lose(db, sql_conn)
    with pytest.raises(ConnectionLostError, match="search_path"):
        collection.search(docs[0], 3)


def test_a_setting_made_after_a_reconnect_is_seen_on_the_next_loss(db: pgembed.Database, docs: np.ndarray,
                                                                     sql_conn: psycopg.Connection) -> None:
    # Lost inside a write, reconnected by a read: the state from before the write is forgotten with the new
    # connection, and what the application SETs on it afterwards is what the next new one must match.
    collection = db.collection("docs")
    with pytest.raises(psycopg.OperationalError), db.session.transaction():
        lose(db, sql_conn)
        db.session.execute("SELECT 1")
    assert collection.search(docs[0], 3).ids[0] == 0  # reconnected
    db.conn.execute("SET search_path = pg_catalog, public")
    lose(db, sql_conn)
    with pytest.raises(ConnectionLostError, match="search_path"):
        collection.search(docs[0], 3)


def test_a_closed_database_says_so(db: pgembed.Database, docs: np.ndarray) -> None:
    collection = db.collection("docs")
    db.close()
    with pytest.raises(ConnectionLostError, match="closed"):
        collection.search(docs[0], 3)


def test_a_transaction_belongs_to_the_thread_that_opened_it(db: pgembed.Database, docs: np.ndarray,
                                                            sql_conn: psycopg.Connection) -> None:
    collection = db.collection("docs")
    opened, done = threading.Event(), threading.Event()
    seen: list[Exception | int] = []

    def other_thread() -> None:
        opened.wait(10)
        try:
            seen.append(len(collection.search(docs[0], 3)))
        except Exception as err:  # noqa: BLE001 - the test reads what the thread saw
            seen.append(err)
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with db.transaction():
        collection.ingest([ROWS], unit_vectors(1, DIM, seed=8))
        opened.set()
        assert done.wait(10)
    thread.join()
    assert isinstance(seen[0], ConcurrentUseError), seen
    assert len(collection.search(docs[0], 3)) == 3  # once it ended, any thread
    assert sql_conn.execute("SELECT count(*) FROM docs").fetchone() == (ROWS + 1,)


def test_a_connection_lost_inside_pgembeds_own_settings_is_replaced(db: pgembed.Database, docs: np.ndarray,
                                                                   sql_conn: psycopg.Connection) -> None:
    # Lost while pgembed's pinned search_path was in force (a backfill batch, an encoder): the server's last
    # report is pgembed's path, not the application's, which is what a new connection must match.
    with pytest.raises(psycopg.OperationalError), db.session.transaction(), db.session.pinned_search_path():
        lose(db, sql_conn)
        db.session.execute("SELECT 1")
    assert db.collection("docs").search(docs[0], 3).ids[0] == 0


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_pooled_connection_serves_a_database_per_borrow(dsn: str, docs: np.ndarray, sql_conn: psycopg.Connection,
                                                          autocommit: bool) -> None:
    # pgembed on psycopg's own pool: a Database wraps the connection borrowed, for as long as it is borrowed;
    # its writes are part of the borrow's transaction when the pool's connections are not in autocommit.
    from psycopg_pool import ConnectionPool

    with ConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": autocommit}) as pool:
        for i in range(3):
            with pool.connection() as conn:
                collection = pgembed.Database(conn).collection("docs")
                assert collection.search(docs[i], 3).ids[0] == i
                collection.ingest([ROWS + 10 + i], docs[i:i + 1])
        with pytest.raises(RuntimeError, match="rolled back"), pool.connection() as conn:
            pgembed.Database(conn).collection("docs").ingest([ROWS + 20], docs[:1])
            conn.execute("SELECT 1")
            raise RuntimeError("rolled back: the pool ends the borrow's transaction")
    assert sql_conn.execute("SELECT count(*) FROM docs WHERE id BETWEEN %s AND %s",
                            (ROWS + 10, ROWS + 12)).fetchone() == (3,)
    # In autocommit the ingest committed on its own; otherwise it was the borrow's, and went with it.
    assert sql_conn.execute("SELECT count(*) FROM docs WHERE id = %s", (ROWS + 20,)).fetchone() == (
        (1,) if autocommit else (0,))


def test_an_async_connection_is_refused_with_the_way_to_go(dsn: str) -> None:
    async def refused() -> str:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            with pytest.raises(TypeError, match="synchronous.*asyncio.to_thread") as raised:
                pgembed.Database(conn)  # type: ignore[arg-type]
            return str(raised.value)

    import asyncio

    assert "AsyncConnection" in asyncio.run(refused())
