"""Every kernel against its SQL twin, through the server: the same text for every valid input, an ERROR from
both for every invalid one, and the server alive after either.

Inputs are fuzzed with hypothesis over what real data and bad callers send: ordinary embeddings, tiny,
subnormal and huge components, mixed scales in one vector, zeros; wrong dimensions, codes of the wrong
length, NULL elements, tables of another codec or version, unknown metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.helpers import vector_text

SCHEMAS = ("pgembed_kernels", "pgembed_twins")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

Outcome = tuple[str, str]  # ("ok", result text) or ("error", message)


def call(conn: psycopg.Connection, schema: str, function: str, args: list[Any], types: list[str]) -> Outcome:
    placeholders = ", ".join(f"%s::{t}" for t in types)
    try:
        with conn.transaction():
            row = conn.execute(f"SELECT {schema}.{function}({placeholders})::text", args).fetchone()
    except psycopg.errors.DatabaseError as err:
        assert err.sqlstate is not None and not err.sqlstate.startswith(("XX", "58")), (
            f"{schema}.{function} failed inside the server ({err.sqlstate}): {err}")
        return ("error", err.diag.message_primary or str(err))
    assert row is not None
    return ("ok", row[0])


def both(conn: psycopg.Connection, function: str, args: list[Any], types: list[str]) -> Outcome:
    """The kernel's outcome, asserted equal to the twin's (errors: both raise, with the same message)."""
    kernel, twin = (call(conn, schema, function, args, types) for schema in SCHEMAS)
    assert kernel == twin, f"{function}{tuple(types)}: kernel {kernel} twin {twin}"
    assert conn.execute("SELECT 1").fetchone() == (1,)
    return kernel


def array_text(rows: np.ndarray | list[np.ndarray]) -> str:
    return "{" + ",".join(f'"{vector_text(np.asarray(r))}"' for r in rows) + "}"


# -- inputs --------------------------------------------------------------------------------------------------

SCALES = st.sampled_from([1.0, 1e-3, 1e-20, 1e-39, 1e-44, 1e10, 1e30, 3e38])


@st.composite
def vectors(draw: st.DrawFn, dim: int) -> np.ndarray:
    """A float32 vector as embeddings come, or at one extreme scale, or with its components at mixed scales."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(dim)
    shape = draw(st.sampled_from(["plain", "scaled", "mixed", "zeros", "sparse"]))
    if shape == "scaled":
        x = x * draw(SCALES)
    elif shape == "mixed":
        x = x * rng.choice([1.0, 1e-20, 1e-40, 1e-45, 1e20, 1e38], size=dim)
    elif shape == "zeros":
        x = np.zeros(dim) * draw(st.sampled_from([1.0, -1.0]))
    elif shape == "sparse":
        x = np.where(rng.random(dim) < 0.8, 0.0, x)
    with np.errstate(over="ignore"):
        out = np.clip(x, -3.4e38, 3.4e38).astype(np.float32)
    return out


def dims(low: int = 1, high: int = 40) -> st.SearchStrategy[int]:
    return st.integers(low, high)


METRICS = st.sampled_from(["l2", "ip", "cosine"])
BAD_METRICS = st.sampled_from(["l2", "ip", "cosine", "L2", "hamming", ""])


# -- encoders ------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), dim=dims())
def test_float16_binary_and_thermometer(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int) -> None:
    v = data.draw(vectors(dim))
    other_dim = data.draw(st.sampled_from([dim, dim, dim + 1]))
    mean = data.draw(vectors(other_dim))
    assert both(kernel_conn, "encode_float16", [vector_text(v)], ["vector"])[0] == "ok"
    outcome = both(kernel_conn, "encode_binary", [vector_text(v), vector_text(mean)], ["vector", "vector"])
    assert (outcome[0] == "ok") == (other_dim == dim)
    levels = data.draw(st.integers(1, 4))
    thresholds = [data.draw(vectors(other_dim)) for _ in range(levels)]
    outcome = both(kernel_conn, "encode_thermometer", [vector_text(v), array_text(thresholds)],
                   ["vector", "vector[]"])
    assert (outcome[0] == "ok") == (other_dim == dim)


@FUZZ
@given(data=st.data(), dim=dims())
def test_int8_and_sq_bits(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int) -> None:
    v, lo = data.draw(vectors(dim)), data.draw(vectors(dim))
    inv = np.abs(data.draw(vectors(dim)))
    assert both(kernel_conn, "encode_int8", [vector_text(v), vector_text(lo), vector_text(inv)],
                ["vector"] * 3)[0] == "ok"
    n_bits = data.draw(st.sampled_from([dim, dim, dim - 1]))
    bits = data.draw(st.lists(st.integers(0, 8), min_size=max(n_bits, 0), max_size=max(n_bits, 0)))
    if data.draw(st.booleans()) and bits:
        bits[0] = data.draw(st.sampled_from([-1, 9, 2**31 - 1]))
    outcome = both(kernel_conn, "encode_sq_bits", [vector_text(v), vector_text(lo), vector_text(inv), bits],
                   ["vector", "vector", "vector", "integer[]"])
    valid = n_bits == dim and all(0 <= b <= 8 for b in bits)
    assert (outcome[0] == "ok") == valid


def pq_parameters(rng: np.random.Generator, m: int, sub: int, centroids: int, scale: float) -> tuple[str, str]:
    """A codebook in the form the trigger passes: columns (one vector per dimension, its centroids' values)
    and norms (one vector per sub-space, its centroids' squared norms)."""
    books = (rng.standard_normal((m, centroids, sub)) * scale).astype(np.float32)
    columns = books.transpose(0, 2, 1).reshape(m * sub, centroids)
    with np.errstate(over="ignore"):
        norms = np.clip((books.astype(np.float64) ** 2).sum(2), 0, 3.4e38).astype(np.float32)
    return array_text(columns), array_text(norms)


@FUZZ
@given(data=st.data(), m=st.integers(1, 6), sub=st.integers(1, 6), centroids=st.sampled_from([1, 2, 16, 256]))
def test_pq_encoder_refuses_no_finite_vector(kernel_conn: psycopg.Connection, data: st.DataObject, m: int,
                                             sub: int, centroids: int) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    columns, norms = pq_parameters(rng, m, sub, centroids, data.draw(st.sampled_from([1.0, 1e-20, 1e18])))
    v = data.draw(vectors(m * sub))
    outcome = both(kernel_conn, "encode_pq", [vector_text(v), columns, norms, sub],
                   ["vector", "vector[]", "vector[]", "integer"])
    assert outcome[0] == "ok", outcome
    wrong = data.draw(st.sampled_from([sub + 1, 0, -3]))
    assume(wrong != sub)
    assert both(kernel_conn, "encode_pq", [vector_text(v), columns, norms, wrong],
                ["vector", "vector[]", "vector[]", "integer"])[0] == "error"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), m=st.integers(1, 4), sub=st.integers(1, 9), centroids=st.sampled_from([16, 64, 256]),
       scale=st.sampled_from([1.0, 1e-3, 1e-20, 1e18]))
def test_pq_encoder_with_a_constant_codebook_is_the_twins_on_every_row(kernel_conn: psycopg.Connection,
                                                                       data: st.DataObject, m: int, sub: int,
                                                                       centroids: int, scale: float) -> None:
    """A codebook written into the statement (as a trigger's or a backfill's call has it) is prepared once for
    all the rows, which are then scored from its int8 copy and re-checked exactly: the same code bytes."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    books = (rng.standard_normal((m, centroids, sub)) * scale).astype(np.float32)
    if data.draw(st.booleans()):  # equal centroids: equal scores, the first index wins
        books[:, centroids // 2] = books[:, 1]
    columns = array_text(books.transpose(0, 2, 1).reshape(m * sub, centroids))
    with np.errstate(over="ignore"):
        norms = array_text(np.clip((books.astype(np.float64) ** 2).sum(2), 0, 3.4e38).astype(np.float32))
    near = books[np.arange(m), rng.integers(0, centroids, m)].reshape(-1)  # rows near a centroid, and others
    rows = [near, near + np.float32(1e-7) * scale] + [data.draw(vectors(m * sub)) for _ in range(10)]
    rows += [(rng.standard_normal(m * sub) * scale).astype(np.float32) for _ in range(30)]
    kernel_conn.execute("CREATE TEMP TABLE IF NOT EXISTS pq_rows (n integer, v vector)")
    kernel_conn.execute("TRUNCATE pq_rows")
    with kernel_conn.cursor().copy("COPY pq_rows (n, v) FROM STDIN") as copy:
        for i, v in enumerate(rows):
            copy.write_row([i, vector_text(np.asarray(v, np.float32))])
    arguments = sql.SQL("v, {}::vector[], {}::vector[], {}").format(sql.Literal(columns), sql.Literal(norms),
                                                                  sql.Literal(sub))
    notices: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    kernel_conn.add_notice_handler(keep)
    try:
        kernel_conn.execute("SET client_min_messages = debug1")
        kernel = kernel_conn.execute(sql.SQL("SELECT n, pgembed_kernels.encode_pq({}) FROM pq_rows ORDER BY n").format(
            arguments)).fetchall()
    finally:
        kernel_conn.execute("RESET client_min_messages")
        kernel_conn.remove_notice_handler(keep)
    twin = kernel_conn.execute(sql.SQL("SELECT n, pgembed_twins.encode_pq({}) FROM pq_rows ORDER BY n").format(
        arguments)).fetchall()
    assert kernel == twin
    in_range = 1e-18 < scale < 1e15
    assert any("codebook prepared" in n for n in notices) == in_range, notices  # the prepared path ran


def test_pq_underflow_of_the_old_sql_encoder_is_encoded(kernel_conn: psycopg.Connection) -> None:
    """Regression: the former SQL encoder ran pgvector's elementwise arithmetic, which raised "value out of
    range: underflow" for products below float32's range; 30,000 real rows failed add_codec("pq48")."""
    rng = np.random.default_rng(7)
    columns, norms = pq_parameters(rng, 4, 4, 256, 1e-3)
    v = rng.standard_normal(16).astype(np.float32) * np.float32(1e-36)
    for schema in SCHEMAS:
        outcome = call(kernel_conn, schema, "encode_pq", [vector_text(v), columns, norms, 4],
                       ["vector", "vector[]", "vector[]", "integer"])
        assert outcome[0] == "ok", (schema, outcome)
    both(kernel_conn, "encode_pq", [vector_text(v), columns, norms, 4], ["vector", "vector[]", "vector[]", "integer"])


@FUZZ
@given(data=st.data(), dim=dims(), lists=st.sampled_from([1, 2, 3, 9, 40]))
def test_ivf_encoder_is_the_twins_nearest_centroid(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int,
                                                   lists: int) -> None:
    """Centroids at any scale, equal ones (the first wins), rows on a centroid, a rounding step off one, and
    others: the kernel's pruned search returns the index of the twin's ORDER BY v <-> c, i LIMIT 1."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    centroids = [data.draw(vectors(dim)) for _ in range(lists)]
    if lists > 1 and data.draw(st.booleans()):
        centroids[-1] = centroids[0].copy()
    on = centroids[rng.integers(lists)]
    rows = [data.draw(vectors(dim)) for _ in range(6)] + [on, np.nextafter(on, np.float32(np.inf))]
    for v in rows:
        outcome = both(kernel_conn, "encode_ivf", [vector_text(v), array_text(centroids)], ["vector", "vector[]"])
        assert outcome[0] == "ok" and 0 <= int(outcome[1]) < lists, outcome


def ivf_rows(conn: psycopg.Connection, rows: list[np.ndarray]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS ivf_rows (n integer, v vector)")
    conn.execute("TRUNCATE ivf_rows")
    with conn.cursor().copy("COPY ivf_rows (n, v) FROM STDIN") as copy:
        for i, v in enumerate(rows):
            copy.write_row([i, vector_text(np.asarray(v, np.float32))])


def measured_centroids(conn: psycopg.Connection, statement: sql.Composable) -> tuple[list[Any], list[int]]:
    """The statement's rows, and the count of centroids each encode_ivf call measured with pgvector (DEBUG2)."""
    notices: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    conn.add_notice_handler(keep)
    try:
        conn.execute("SET client_min_messages = debug2")
        rows = conn.execute(statement).fetchall()
    finally:
        conn.execute("RESET client_min_messages")
        conn.remove_notice_handler(keep)
    return rows, [int(n.split()[1]) for n in notices if n.startswith("encode_ivf:")]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), scale=st.sampled_from([1.0, 1e-3, 1e-20, 1e-40, 1e18, 1e36]))
def test_ivf_encoder_with_constant_centroids_is_the_twins_on_every_row(kernel_conn: psycopg.Connection,
                                                                       data: st.DataObject, scale: float) -> None:
    """Centroids written into the statement (as a trigger's call has them) are kept once for all the rows: the
    same clusters as the twin's, with pgvector measuring few centroids a row where the bound can prune."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    centroids = (rng.standard_normal((32, 24)) * scale).astype(np.float32)
    if data.draw(st.booleans()):
        centroids[20] = centroids[3]
    rows = [(c + rng.standard_normal(24) * 0.3 * scale).astype(np.float32) for c in centroids[rng.integers(0, 32, 40)]]
    rows += [centroids[3], centroids[20]] + [data.draw(vectors(24)) for _ in range(6)]
    ivf_rows(kernel_conn, rows)
    literal = sql.Literal(array_text(centroids))
    kernel, measured = measured_centroids(kernel_conn, sql.SQL(
        "SELECT n, pgembed_kernels.encode_ivf(v, {}::vector[]) FROM ivf_rows ORDER BY n").format(literal))
    twin = kernel_conn.execute(sql.SQL(
        "SELECT n, pgembed_twins.encode_ivf(v, {}::vector[]) FROM ivf_rows ORDER BY n").format(literal)).fetchall()
    assert kernel == twin
    assert len(measured) == len(rows)
    if 1e-30 < scale < 1e15:  # squared distances below 2^120: beyond, every centroid is measured
        assert sum(measured[:40]) <= 2 * 40, measured


@FUZZ
@given(data=st.data(), dim=dims(), out=st.integers(1, 12))
def test_projections_and_rabitq_factors(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int,
                                        out: int) -> None:
    v, centre = data.draw(vectors(dim)), data.draw(vectors(dim))
    row_dim = data.draw(st.sampled_from([dim, dim, dim + 2]))
    rows = [data.draw(vectors(row_dim)) for _ in range(out)]
    first = both(kernel_conn, "project", [vector_text(v), array_text(rows)], ["vector", "vector[]"])
    second = both(kernel_conn, "project", [vector_text(v), vector_text(centre), array_text(rows)],
                  ["vector", "vector", "vector[]"])
    assert first[0] == second[0] == ("ok" if row_dim == dim else "error")
    rotated = data.draw(vectors(dim))
    assert both(kernel_conn, "rabitq_factors", [vector_text(v), vector_text(centre), vector_text(rotated)],
                ["vector"] * 3)[0] == "ok"


# -- estimators ----------------------------------------------------------------------------------------------

def kernel_value(conn: psycopg.Connection, function: str, args: list[Any], types: list[str]) -> Any:
    placeholders = ", ".join(f"%s::{t}" for t in types)
    return conn.execute(f"SELECT pgembed_kernels.{function}({placeholders})", args).fetchone()[0]  # type: ignore[index]


def corrupt(table: list[float], data: st.DataObject) -> list[float]:
    """A table as a careless caller might pass it: cut, of another version, with a foreign entry."""
    how = data.draw(st.sampled_from(["as is", "as is", "cut", "version", "tag", "entry", "header"]))
    table = list(table)
    if how == "cut":
        return table[: data.draw(st.integers(0, len(table) - 1))]
    if how == "version":
        table[1] = 2.0
    elif how == "tag":
        table[0] = 3.0 - table[0]
    elif how == "entry":
        table[-1] = 0.5
    elif how == "header":
        table[3] = 1e9
    return table


@FUZZ
@given(data=st.data(), m=st.integers(1, 8), sub=st.integers(1, 4), centroids=st.sampled_from([2, 16, 256]),
       metric=METRICS)
def test_pq_table_and_distance(kernel_conn: psycopg.Connection, data: st.DataObject, m: int, sub: int,
                               centroids: int, metric: str) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    columns, norms = pq_parameters(rng, m, sub, centroids, 1.0)
    query = data.draw(vectors(m * sub))
    args = [vector_text(query), columns, norms, sub, metric]
    types = ["vector", "vector[]", "vector[]", "integer", "text"]
    if both(kernel_conn, "pq_lut", args, types)[0] == "error":
        assert metric == "cosine" and not query.any()
        return
    table = kernel_value(kernel_conn, "pq_lut", args, types)
    length = data.draw(st.sampled_from([m, m, m + 1, max(m - 1, 0)]))
    code = bytes(data.draw(st.lists(st.integers(0, 255), min_size=length, max_size=length)))
    table = corrupt(table, data)
    both(kernel_conn, "pq_distance", [code, table], ["bytea", "double precision[]"])


@FUZZ
@given(data=st.data(), dim=dims(1, 24), per_dim=st.integers(1, 4), metric=METRICS)
def test_sign_bit_and_rabitq_estimators(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int,
                                        per_dim: int, metric: str) -> None:
    query = data.draw(vectors(dim))
    nbits = data.draw(st.sampled_from([dim * per_dim, dim * per_dim, dim + 1, 0, 200_000]))
    if both(kernel_conn, "bits_lut", [vector_text(query), nbits, metric], ["vector", "integer", "text"])[0] == "ok":
        table = corrupt(kernel_value(kernel_conn, "bits_lut", [vector_text(query), nbits, metric],
                                     ["vector", "integer", "text"]), data)
        length = data.draw(st.sampled_from([nbits, nbits, nbits - 1, nbits + 8]))
        code = "".join(data.draw(st.lists(st.sampled_from("01"), min_size=length, max_size=length)))
        both(kernel_conn, "bits_distance", [code, table], ["varbit", "double precision[]"])
    centre, rotated = data.draw(vectors(dim)), data.draw(vectors(dim))
    args = [vector_text(query), vector_text(centre), vector_text(rotated), metric]
    if both(kernel_conn, "rabitq_lut", args, ["vector", "vector", "vector", "text"])[0] == "ok":
        table = corrupt(kernel_value(kernel_conn, "rabitq_lut", args, ["vector", "vector", "vector", "text"]), data)
        length = data.draw(st.sampled_from([dim, dim, dim + 3]))
        code = "".join(data.draw(st.lists(st.sampled_from("01"), min_size=length, max_size=length)))
        factor_dim = data.draw(st.sampled_from([2, 2, 3]))
        factors = vector_text(data.draw(vectors(factor_dim)))
        both(kernel_conn, "rabitq_distance", [code, factors, table], ["varbit", "vector", "double precision[]"])


@FUZZ
@given(data=st.data(), dim=dims(), metric=BAD_METRICS)
def test_int8_estimator(kernel_conn: psycopg.Connection, data: st.DataObject, dim: int, metric: str) -> None:
    query, lo = data.draw(vectors(dim)), data.draw(vectors(data.draw(st.sampled_from([dim, dim, dim + 1]))))
    step = np.abs(data.draw(vectors(dim)))
    args = [vector_text(query), vector_text(lo), vector_text(step), metric]
    types = ["vector", "vector", "vector", "text"]
    if both(kernel_conn, "sq8_query", args, types)[0] == "error":
        return
    table = corrupt(kernel_value(kernel_conn, "sq8_query", args, types), data)
    length = data.draw(st.sampled_from([dim, dim, dim + 1]))
    code = bytes(data.draw(st.lists(st.integers(0, 255), min_size=length, max_size=length)))
    both(kernel_conn, "sq8_distance", [code, table], ["bytea", "double precision[]"])


def test_a_run_the_metric_does_not_use_is_never_read(kernel_conn: psycopg.Connection) -> None:
    """Regression: the int8 twin summed the runs of every metric inside CASE, which a generic plan (PL/pgSQL's
    after five calls in a session) evaluates anyway: a foreign entry in a run ip does not use raised there."""
    rng = np.random.default_rng(0)
    types = ["vector", "vector", "vector", "text"]

    def table(dim: int, metric: str) -> list[float]:
        query, lo, step = (rng.standard_normal(dim).round(3).astype(np.float32) for _ in range(3))
        return kernel_value(kernel_conn, "sq8_query",  # type: ignore[no-any-return]
                            [vector_text(query), vector_text(lo), vector_text(np.abs(step)), metric], types)

    for i in range(12):
        dim = int(rng.integers(1, 30))
        code = bytes(rng.integers(0, 256, dim).tolist())
        both(kernel_conn, "sq8_distance", [code, table(dim, ("l2", "ip", "cosine")[i % 3])],
             ["bytea", "double precision[]"])
        foreign = table(1, "ip")
        foreign[-1] = 0.5  # in the run of squares, which ip does not read
        assert both(kernel_conn, "sq8_distance", [b"\x00", foreign], ["bytea", "double precision[]"])[0] == "ok"


def test_multidimensional_arrays_are_read_as_their_elements_in_both(kernel_conn: psycopg.Connection) -> None:
    """A codebook passed as a 2-D array (rows of vectors) is its elements in order, for kernel and twin alike."""
    rng = np.random.default_rng(3)
    columns, norms = pq_parameters(rng, 2, 2, 16, 1.0)
    columns_2d = "{" + ",".join("{" + c + "}" for c in columns[1:-1].split('","')) + "}"
    columns_2d = columns_2d.replace("{[", '{"[').replace("]}", ']"}')
    norms_2d = "{" + norms.replace('","', '"},{"') + "}"
    v = vector_text(rng.standard_normal(4).astype(np.float32))
    flat = both(kernel_conn, "encode_pq", [v, columns, norms, 2], ["vector", "vector[]", "vector[]", "integer"])
    assert both(kernel_conn, "encode_pq", [v, columns, norms_2d, 2],
                ["vector", "vector[]", "vector[]", "integer"]) == flat
    for metric in ("l2", "ip", "cosine"):
        assert both(kernel_conn, "pq_lut", [v, columns, norms_2d, 2, metric],
                    ["vector", "vector[]", "vector[]", "integer", "text"])[0] == "ok"


# -- what no fuzzer draws by chance --------------------------------------------------------------------------

@pytest.mark.parametrize(("function", "args", "types"), [
    ("encode_thermometer", ["[1,2]", "{}"], ["vector", "vector[]"]),
    ("encode_thermometer", ["[1,2]", '{"[1,2]",NULL}'], ["vector", "vector[]"]),
    ("project", ["[1,2]", "{}"], ["vector", "vector[]"]),
    ("project", ["[1,2]", '{NULL}'], ["vector", "vector[]"]),
    ("encode_pq", ["[1,2]", '{"[1,2]","[3,4]"}', "{}", 1], ["vector", "vector[]", "vector[]", "integer"]),
    ("encode_pq", ["[1,2]", '{"[1,2]","[3,4]"}', '{"[1,2]",NULL}', 1],
     ["vector", "vector[]", "vector[]", "integer"]),
    ("encode_sq_bits", ["[1,2]", "[0,0]", "[1,1]", "{1,NULL}"], ["vector", "vector", "vector", "integer[]"]),
    ("encode_ivf", ["[1,2]", "{}"], ["vector", "vector[]"]),
    ("encode_ivf", ["[1,2]", '{"[1,2]",NULL}'], ["vector", "vector[]"]),
    ("encode_ivf", ["[1,2]", '{"[1,2]","[1,2,3]"}'], ["vector", "vector[]"]),
    ("pq_distance", [b"\x01", "{}"], ["bytea", "double precision[]"]),
    ("pq_distance", [b"\x01", "{1,1,1,NULL,1,1,1,1,1,1,1,1}"], ["bytea", "double precision[]"]),
    ("bits_distance", ["101", "{1,1,1,1,1,1,1,1,1,1,1,1,1}"], ["varbit", "double precision[]"]),
    ("bits_lut", ["[1,2]", 2**31 - 1, "ip"], ["vector", "integer", "text"]),
    ("bits_lut", ["[1,2]", -4, "ip"], ["vector", "integer", "text"]),
    ("sq8_query", ["[0,0]", "[0,0]", "[1,1]", "cosine"], ["vector", "vector", "vector", "text"]),
    ("sq8_distance", [b"", "{2,1,1,0,0,0,0,0,0,0,0,0}"], ["bytea", "double precision[]"]),
])
def test_invalid_inputs_raise_in_both(kernel_conn: psycopg.Connection, function: str, args: list[Any],
                                      types: list[str]) -> None:
    outcome = both(kernel_conn, function, args, types)
    assert outcome[0] == "error" and outcome[1], outcome


def test_huge_inputs_raise_instead_of_exhausting_memory(kernel_conn: psycopg.Connection) -> None:
    """A projection to 20,000 dimensions is more than a vector holds: both refuse before computing it. A
    thermometer code of 3.2M bits is allowed; one of 320M bits needs an array PostgreSQL itself refuses."""
    outcome = both(kernel_conn, "project", ["[1,2]", "{" + ",".join(['"[1,2]"'] * 20_000) + "}"],
                   ["vector", "vector[]"])
    assert outcome[0] == "error" and "dimensions" in outcome[1], outcome
    huge = kernel_conn.execute(
        "SELECT length(pgembed_kernels.encode_thermometer(array_fill(1, ARRAY[16000])::vector, "
        "array_fill(array_fill(0, ARRAY[16000])::vector, ARRAY[200])))")
    assert huge.fetchone() == (3_200_000,)
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="array size exceeds"):
        kernel_conn.execute("SELECT pgembed_kernels.encode_thermometer(array_fill(1, ARRAY[16000])::vector, "
                            "array_fill(array_fill(0, ARRAY[16000])::vector, ARRAY[20000]))")
    assert kernel_conn.execute("SELECT 1").fetchone() == (1,)


def test_every_kernel_has_a_twin_of_the_same_signature(kernel_conn: psycopg.Connection) -> None:
    rows = kernel_conn.execute("""
        SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')', p.prokind,
               (SELECT count(*) FROM pg_proc AS t
                 WHERE t.pronamespace = 'pgembed_twins'::regnamespace AND t.proname = p.proname
                   AND t.proargtypes = p.proargtypes AND t.prorettype = p.prorettype)
        FROM pg_proc AS p
        WHERE p.pronamespace = 'pgembed_kernels'::regnamespace
          AND p.proname NOT IN ('version', 'exact_topk_step', 'exact_topk_final', 'exact_topk',
                                'estimate_topk_step', 'estimate_topk_final', 'estimate_topk',
                                'probe_topk_step', 'probe_topk_final', 'probe_topk')""").fetchall()
    assert len(rows) >= 17
    assert [r[0] for r in rows if r[2] != 1] == []
    # exact_topk is the scan behind pgembed.scan_topk(); its twin is that function's per-query statement,
    # compared in tests/kernels/test_scan.py. estimate_topk's is pgembed.estimate_topk()'s (test_estimate.py),
    # probe_topk's pgembed.probe_topk()'s (test_probe.py).
