"""Which implementation runs, and who chooses: pgembed.kernels(), Database.kernels() and describe() say it;
use_kernels() and `PGEMBED_KERNELS` choose it; migrate() keeps the database's choice; this test run itself
runs on the kernels unless it was asked not to."""

from __future__ import annotations

import numpy as np
import pytest

import pgembed
from pgembed import KernelMode
from pgembed.db.kernels import KERNELS_ENV, kernels_wanted_by_environment


def test_this_run_uses_what_it_asked_for(db: pgembed.Database) -> None:
    """`make test` runs the whole suite on the kernels (the embedded server has them after `make kernels`);
    PGEMBED_KERNELS=off runs it on the twins."""
    expected = KernelMode.TWINS if kernels_wanted_by_environment() is False else KernelMode.KERNELS
    status = db.kernels()
    assert status.active is expected, status.reason
    if expected is KernelMode.KERNELS:
        assert status.installed == status.wanted == "1.2"
        assert "pgembed.encode_pq(vector,vector[],vector[],integer)" in status.functions


def test_the_choice_is_the_databases_and_migrate_keeps_it(db: pgembed.Database,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KERNELS_ENV, raising=False)
    docs = db.create_collection("docs", 8)
    docs.ingest(np.arange(3), np.eye(3, 8, dtype=np.float32))
    twins = db.use_kernels(False)
    assert twins.active is KernelMode.TWINS and twins.functions == ()
    assert "chose the twins" in twins.reason
    assert db.value("SELECT use_kernels FROM pgembed.kernel_choice") is False
    assert docs.describe()["kernels"] == "twins"
    body = db.value("SELECT prosrc || coalesce(pg_get_function_sqlbody(oid), '') FROM pg_proc "
                    "WHERE oid = 'pgembed.encode_pq(vector,vector[],vector[],integer)'::regprocedure")
    assert "pgembed_twins" in body
    db.migrate()
    assert db.kernels().active is KernelMode.TWINS
    assert db.use_kernels(True).active is KernelMode.KERNELS
    assert docs.describe()["kernels"] == "kernels"
    monkeypatch.setenv(KERNELS_ENV, "off")
    db.migrate()
    assert db.kernels().active is KernelMode.TWINS
    monkeypatch.setenv(KERNELS_ENV, "on")
    db.migrate()
    assert db.kernels().active is KernelMode.KERNELS
    monkeypatch.delenv(KERNELS_ENV)
    db.migrate()  # the override held for its migrate only: the database chose the kernels (use_kernels(True))
    assert db.kernels().active is KernelMode.KERNELS
    db.use_kernels(False)
    monkeypatch.setenv(KERNELS_ENV, "on")
    db.migrate()
    monkeypatch.delenv(KERNELS_ENV)
    db.migrate()
    assert db.kernels().active is KernelMode.TWINS
    monkeypatch.setenv(KERNELS_ENV, "sometimes")
    with pytest.raises(pgembed.InvalidInputError, match="PGEMBED_KERNELS"):
        db.migrate()


def test_an_extension_created_by_hand_is_bound_at_the_next_migrate(db: pgembed.Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With no choice recorded, the kernels: a DBA's CREATE EXTENSION (what pgembed.kernels() suggests) takes
    effect at the next migrate()."""
    monkeypatch.delenv(KERNELS_ENV, raising=False)
    db.execute("SELECT pgembed.bind_kernels(false, false)")
    db.execute("DROP EXTENSION pgembed_kernels")
    db.execute("DELETE FROM pgembed.kernel_choice")
    assert "not installed in this database" in db.kernels().reason
    db.execute("CREATE EXTENSION pgembed_kernels")
    assert db.kernels().active is KernelMode.TWINS
    db.migrate()
    assert db.kernels().active is KernelMode.KERNELS


def test_the_kernels_cannot_be_dropped_from_under_pgembed(db: pgembed.Database) -> None:
    """pgembed's functions depend on the kernels they call: DROP EXTENSION says so instead of leaving
    pgembed without its functions; after use_kernels(False) it goes, and the twins serve."""
    import psycopg

    encode = "SELECT pgembed.encode_int8('[1,-2.5,0.01]'::vector, '[-3,-3,-3]'::vector, '[40,40,40]'::vector)"
    by_kernel = db.value(encode)
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("DROP EXTENSION pgembed_kernels")
    db.use_kernels(False)
    db.execute("DROP EXTENSION pgembed_kernels")
    status = db.kernels()
    assert status.active is KernelMode.TWINS and status.installed is None
    assert "not installed in this database" in status.reason
    assert db.value(encode) == by_kernel
    assert db.use_kernels(True).active is KernelMode.KERNELS  # installed again where the role may
