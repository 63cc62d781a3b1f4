"""pgembed's changes of a collection neither block nor break the application's writers: a backfill skips the
rows writers hold (and takes them once freed), a codec change waiting for a lock gives way instead of queueing
every writer behind it, and an interrupted concurrent index build is cleaned by the next build."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import psycopg
import pytest
from psycopg import sql

import pgembed
from pgembed.codecs.binary import bits_to_text
from pgembed.errors import SchemaError
from tests.helpers import unit_vectors

DIM = 24
ROWS = 400


def make_docs(db: pgembed.Database, placement: str) -> tuple[pgembed.Collection, np.ndarray]:
    c = db.create_collection("docs", DIM, attrs={"cat": "text"}, placement=placement)
    x = unit_vectors(ROWS, DIM, seed=5)
    c.ingest(np.arange(ROWS), x, {"cat": ["a"] * ROWS})
    return c, x


def codes_table(c: pgembed.Collection) -> sql.Composable:
    return sql.Identifier("pgembed", f"codes_{c.info.id}") if c.info.placement.value == "companion" \
        else sql.Identifier("docs")


def stored_codes(conn: psycopg.Connection, c: pgembed.Collection, column: str) -> dict[int, str | None]:
    rows = conn.execute(sql.SQL("SELECT id, {}::text FROM {}").format(sql.Identifier(column), codes_table(c)))
    return {int(k): v for k, v in rows.fetchall()}


def in_background(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as err:  # handed to the test's thread, which raises it
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def result_of(thread: threading.Thread, outcome: list[object], seconds: float = 60) -> object:
    thread.join(seconds)
    assert not thread.is_alive(), "the background call did not finish"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("placement", ["table", "companion"])
def test_a_backfill_skips_the_rows_a_writer_holds_and_takes_them_once_freed(
        db: pgembed.Database, dsn: str, placement: str) -> None:
    c, x = make_docs(db, placement)
    c.add_codec("bq", "bq", backfill=False)
    column = c.context.codecs()[0].column_name
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as observer:
        holder.execute("SELECT 1 FROM docs WHERE id = 5 FOR UPDATE")  # a writer's open transaction
        thread, outcome = in_background(lambda: c.backfill(batch_rows=50))

        def all_but_the_held_row() -> bool:
            return sum(v is not None for v in stored_codes(observer, c, column).values()) == ROWS - 1

        # Before: the first batch waited for row 5, and with it every row of that batch.
        assert wait_until(all_but_the_held_row), "the backfill waited for the writer's row"
        assert thread.is_alive()  # row 5 still lacks its code: the backfill waits for it, holding no lock
        holder.commit()
        assert result_of(thread, outcome) == ROWS
    codes = stored_codes(db.conn, c, "embedding_bq")
    expected = bits_to_text(c.codec("bq").encode(x), DIM)
    assert [codes[k] for k in range(ROWS)] == list(expected)


def test_writers_go_on_while_a_codec_change_waits_for_a_long_reader(db: pgembed.Database, dsn: str) -> None:
    c, x = make_docs(db, "table")
    with psycopg.connect(dsn) as reader, psycopg.connect(dsn, autocommit=True) as writer:
        reader.execute("SELECT count(*) FROM docs")  # its lock lasts as long as its transaction
        thread, outcome = in_background(lambda: c.add_codec("bq", "bq"))
        time.sleep(0.3)  # add_codec's ALTER TABLE is now waiting for the reader
        writer.execute("SET statement_timeout = '5s'")
        # Before: the writer queued behind the waiting ALTER TABLE until the reader ended (here: never).
        for key in range(3):
            writer.execute("UPDATE docs SET cat = 'b' WHERE id = %s", (key,))
        assert thread.is_alive()
        reader.commit()
        result_of(thread, outcome)
    assert stored_codes(db.conn, c, "embedding_bq") == dict(enumerate(bits_to_text(c.codec("bq").encode(x), DIM)))


def test_an_interrupted_concurrent_index_build_is_cleaned_by_the_next(db: pgembed.Database, dsn: str) -> None:
    c, _ = make_docs(db, "table")
    c.add_codec("bq", "bq")
    invalid = ("SELECT count(*) FROM pg_index WHERE NOT indisvalid AND indrelid = 'docs'::regclass")
    with psycopg.connect(dsn) as old_snapshot:
        old_snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old_snapshot.execute("SELECT 1")  # the build's last phase waits for this snapshot to end
        db.execute("SET statement_timeout = '2s'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.create_index("bq", concurrently=True)
        db.execute("RESET statement_timeout")
    assert db.value(invalid) == 1  # what an interrupted build leaves: the catalog never recorded it
    assert c.indexes() == []
    # Before: "index ... already exists" until someone dropped it by hand.
    index = c.create_index("bq", concurrently=True)
    assert db.value(invalid) == 0
    assert [i.index_name for i in c.indexes()] == [index.index_name]


def test_an_interrupted_add_codec_names_the_call_that_finishes_it(db: pgembed.Database) -> None:
    c, x = make_docs(db, "table")
    c.add_codec("bq", "bq", backfill=False)  # where an interrupted add_codec leaves a codec
    with pytest.raises(SchemaError, match=r"'bq'.*still building.*call backfill\(\) to finish it"):
        c.add_codec("bq", "bq")
    with pytest.raises(SchemaError, match=r"still building.*call backfill\(\) to finish it"):
        c.search(x[0], k=5, codec="bq")
    c.backfill()
    c.create_index("bq")
    assert len(c.search(x[0], k=5, codec="bq")) == 5


@pytest.mark.parametrize("placement", ["table", "companion"])
def test_a_writer_whose_snapshot_predates_a_codec_is_told_to_retry(dsn: str, db: pgembed.Database,
                                                                   placement: str) -> None:
    """A codec's fitted parameters are rows (pgembed.fitted_parameters): a REPEATABLE READ transaction that began
    before add_codec committed runs the new trigger but cannot see them. It gets a serialization failure, and
    its retry the codes; a READ COMMITTED writer never sees the failure."""
    docs, x = make_docs(db, placement)
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn, autocommit=True) as plain:
        writer.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        writer.execute("SELECT 1")  # its snapshot (no lock on docs, which add_codec alters)
        docs.add_codec("sq8", "sq8")
        with pytest.raises(psycopg.errors.SerializationFailure, match="newer than this transaction's snapshot"):
            writer.execute("INSERT INTO docs (id, embedding) VALUES (10000, %s::vector)", (str(x[0].tolist()),))
        writer.rollback()
        writer.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        writer.execute("INSERT INTO docs (id, embedding) VALUES (10000, %s::vector)", (str(x[0].tolist()),))
        writer.commit()
        plain.execute("INSERT INTO docs (id, embedding) VALUES (10001, %s::vector)", (str(x[0].tolist()),))
        codes = stored_codes(plain, docs, "embedding_sq8")
        assert codes[10000] is not None and codes[10000] == codes[10001] == codes[0]
