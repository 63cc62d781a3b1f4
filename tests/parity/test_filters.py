"""The filter language: a filter handed to Python (turned into canonical JSON, or a SQLAlchemy expression
rendered, then compiled by the server: pgembed.planning.filters, pgembed.engine.filters) and the same filter
handed to pgembed.filter_sql() in SQL select the same rows and are refused alike, and both agree with a
plain-Python reference evaluator of the language's semantics."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgembed.db.session import Session
from pgembed.engine.filters import compile_on
from pgembed.errors import InvalidFilterError, InvalidInputError
from pgembed.planning.filters import NO_FILTER, Filter, as_filter, canonical_json, filter_identity
from pgembed.statements.compose import Pyformat
from tests.conftest import TEMPLATE, _new_database
from tests.helpers import table_state

TABLE = sql.Identifier("items")
ODD = 'x"; DROP TABLE items; --'  # a real column of the test table
COLUMNS = ("title", "n", "x", "flag", "day", ODD)
HYPOTHESIS = settings(max_examples=80, deadline=None)

TITLES = ["alpha", "beta", "Beta", "a'b", 'qu"ote', "back\\slash", "50%", "%(q)s", "üñíçødé 🙂", "", " lead", "zeta"]
NS = list(range(-3, 6))
XS = [-1.5, -0.0, 0.1, 0.25, 1e10, math.inf, -2.0, 3.0]
DAYS = [dt.date(2019, 12, 31), dt.date(2020, 1, 1), dt.date(2020, 2, 29), dt.date(2020, 6, 15), dt.date(2021, 3, 1)]
ODDS = [0, 1, 2]
DATA = {"title": TITLES, "n": NS, "x": XS, "flag": [True, False], "day": DAYS, ODD: ODDS}
# Filter values: the data's own, plus values out of its range (and of int8's, and fractions for integers).
VALUES: dict[str, list[Any]] = {
    "title": [*TITLES, "aaa", "zzzz", "ß", "Z"],
    "n": [*NS, -100, 100, 2**40, 2**70, -(2**70), 2.5, -0.5],
    "x": [*(v for v in XS if math.isfinite(v)), 0.30000000000000004, 1e300, -1e300, 5, 2**70, 7.5],
    "flag": [True, False],
    "day": [d.isoformat() for d in DAYS] + ["1900-01-01", "2100-06-01", "2020-06-14"],
    ODD: [*ODDS, -1, 7],
}


# -- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conn(server_dsn: str) -> Iterator[psycopg.Connection]:
    """One database for the module's tests (they only read, or write inside a transaction rolled back)."""
    for dsn in _new_database(server_dsn, TEMPLATE):
        with psycopg.connect(dsn, autocommit=True) as connection:
            yield connection


@pytest.fixture(scope="module")
def items(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """A table of 40 rows with text (C collation: code-point order, as Python's), integer, double precision,
    boolean and date columns and a column with a hostile name, each NULL now and then."""
    conn.execute(
        sql.SQL(
            """CREATE TABLE items (id integer PRIMARY KEY, title text COLLATE "C", n integer,
               x double precision, flag boolean, day date, {} integer, u uuid)"""
        ).format(sql.Identifier(ODD))
    )
    # A helper the way pgembed.search() uses filter_sql: the clause is EXECUTEd on the server.
    conn.execute(
        """CREATE FUNCTION filtered_ids(tbl regclass, f jsonb) RETURNS SETOF integer LANGUAGE plpgsql AS $$
           BEGIN RETURN QUERY EXECUTE format('SELECT id FROM %s WHERE %s ORDER BY id', tbl,
                                             pgembed.filter_sql(tbl, f)); END $$"""
    )
    rng = random.Random(7)
    rows = []
    for i in range(40):
        row: dict[str, Any] = {"id": i}
        for column, values in DATA.items():
            row[column] = None if rng.random() < 0.25 else rng.choice(values)
        rows.append(row)
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO items (id, title, n, x, flag, day, {}) VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
                sql.Identifier(ODD)
            ),
            [(r["id"], r["title"], r["n"], r["x"], r["flag"], r["day"], r[ODD]) for r in rows],
        )
    return rows


def build_filter(conn: psycopg.Connection, table: sql.Identifier, where: Any) -> str:
    """Python's path: the filter prepared for the server (pgembed.planning.filters), then compiled by it."""
    return compile_on(Session(conn), table, as_filter(where))


def python_ids(conn: psycopg.Connection, where: Any) -> list[int]:
    clause = build_filter(conn, TABLE, where)
    # Executed as pgembed's search statement would be: with parameters of its own beside the filter's.
    query = sql.SQL("SELECT id FROM items WHERE {} AND %(q)s::text IS NOT NULL ORDER BY id").format(
        Pyformat(clause))
    return [r[0] for r in conn.execute(query, {"q": "caller's"}).fetchall()]


def sql_ids(conn: psycopg.Connection, where: Any) -> list[int]:
    return [r[0] for r in conn.execute("SELECT filtered_ids('items', %s)", (Jsonb(where),)).fetchall()]


# -- the reference evaluator ----------------------------------------------------------------------------------
def _coerce(column: str, value: Any) -> Any:
    return dt.date.fromisoformat(value) if column == "day" and isinstance(value, str) else value


def _op(column: str, have: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return have is None if arg is None else have is not None and have == _coerce(column, arg)
    if op == "$ne":
        return not _op(column, have, "$eq", arg)
    if op == "$in":
        return any(_op(column, have, "$eq", a) for a in arg)
    if op == "$nin":
        return not _op(column, have, "$in", arg)
    if op == "$exists":
        return (have is not None) == arg
    if have is None:
        return False
    if op == "$between":
        return _coerce(column, arg[0]) <= have <= _coerce(column, arg[1])
    value = _coerce(column, arg)
    return {"$lt": have < value, "$lte": have <= value, "$gt": have > value, "$gte": have >= value}[op]


def matches(row: dict[str, Any], f: dict[str, Any]) -> bool:
    for key, spec in f.items():
        if key == "$and":
            ok = all(matches(row, sub) for sub in spec)
        elif key == "$or":
            ok = any(matches(row, sub) for sub in spec)
        elif key == "$not":
            ok = not matches(row, spec)
        elif isinstance(spec, dict):
            ok = all(_op(key, row[key], op, arg) for op, arg in spec.items())
        else:
            ok = _op(key, row[key], "$eq", spec)
        if not ok:
            return False
    return True


# -- strategies -------------------------------------------------------------------------------------------------
def value_of(column: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(VALUES[column])


def condition(column: str) -> st.SearchStrategy[Any]:
    value = value_of(column)
    maybe_null = st.sampled_from([*VALUES[column], None])
    arguments: dict[str, st.SearchStrategy[Any]] = {
        "$eq": maybe_null,
        "$ne": maybe_null,
        "$lt": value,
        "$lte": value,
        "$gt": value,
        "$gte": value,
        "$in": st.lists(maybe_null, max_size=4),
        "$nin": st.lists(maybe_null, max_size=4),
        "$between": st.lists(value, min_size=2, max_size=2),
        "$exists": st.booleans(),
    }
    single = st.sampled_from(sorted(arguments)).flatmap(lambda op: arguments[op].map(lambda arg: (op, arg)))
    return st.one_of(maybe_null, st.lists(single, min_size=1, max_size=2, unique_by=lambda t: t[0]).map(dict))


column_filter = st.lists(
    st.sampled_from(COLUMNS).flatmap(lambda c: condition(c).map(lambda spec: (c, spec))),
    min_size=1,
    max_size=2,
    unique_by=lambda t: t[0],
).map(dict)


def _extend(children: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        children.map(lambda f: {"$not": f}),
        st.tuples(children, column_filter).map(lambda t: {**t[1], "$or": [t[0]]}),
    )


filters = st.recursive(column_filter, _extend, max_leaves=8)


# -- agreement ----------------------------------------------------------------------------------------------
@given(f=filters)
@HYPOTHESIS
def test_python_sql_and_reference_select_the_same_rows(
    conn: psycopg.Connection, items: list[dict[str, Any]], f: dict[str, Any]
) -> None:
    expected = [row["id"] for row in items if matches(row, f)]
    assert python_ids(conn, f) == expected
    assert sql_ids(conn, f) == expected


@given(f=column_filter)
@HYPOTHESIS
def test_flat_filters_select_the_same_rows(conn: psycopg.Connection, items: list[dict[str, Any]], f: dict) -> None:
    """Conditions on columns without $and/$or/$not: every operator, more often than nested filters reach."""
    expected = [row["id"] for row in items if matches(row, f)]
    assert python_ids(conn, f) == expected
    assert sql_ids(conn, f) == expected


junk_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["2020-01-01", "2020-13-01", "today", "abc", "1e3", "true", "NaN", *TITLES]),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=5),
)
junk_keys = st.sampled_from([*COLUMNS, "u", "$eq", "$ne", "$lt", "$gte", "$in", "$nin", "$between", "$exists",
                             "$and", "$or", "$not", "$regex", "nope", ""])
junk = st.recursive(
    junk_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(junk_keys, children, max_size=3)
    ),
    max_leaves=10,
)


@given(f=st.dictionaries(junk_keys, junk, max_size=3))
@HYPOTHESIS
def test_python_and_sql_reject_the_same_filters(
    conn: psycopg.Connection, items: list[dict[str, Any]], f: dict[str, Any]
) -> None:
    try:
        py: list[int] | None = python_ids(conn, f)
    except InvalidFilterError:
        py = None
    try:
        in_sql: list[int] | None = sql_ids(conn, f)
    except psycopg.errors.InvalidParameterValue:
        in_sql = None
    assert py == in_sql, f


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({}, None),
        ({"n": None}, lambda r: r["n"] is None),
        ({"title": "50%"}, lambda r: r["title"] == "50%"),
        ({"title": "%(q)s"}, lambda r: r["title"] == "%(q)s"),
        ({"title": {"$in": ["a'b", "back\\slash", 'qu"ote']}},
         lambda r: r["title"] in ("a'b", "back\\slash", 'qu"ote')),
        ({"title": "üñíçødé 🙂"}, lambda r: r["title"] == "üñíçødé 🙂"),
        ({"n": {"$in": []}}, lambda r: False),
        ({"n": {"$nin": []}}, lambda r: True),
        ({"n": {"$ne": 1}}, lambda r: r["n"] != 1),
        ({"n": {"$nin": [1, None]}}, lambda r: r["n"] not in (1, None)),
        ({"n": {"$gt": 2.5}}, lambda r: r["n"] is not None and r["n"] > 2.5),
        ({"$not": {"n": {"$gt": 0}}}, lambda r: not (r["n"] is not None and r["n"] > 0)),
        ({"day": {"$between": ["2020-01-01", "2020-12-31"]}},
         lambda r: r["day"] is not None and dt.date(2020, 1, 1) <= r["day"] <= dt.date(2020, 12, 31)),
        ({ODD: {"$exists": True}}, lambda r: r[ODD] is not None),
        ({"$and": [{}]}, lambda r: True),
    ],
)
def test_examples(conn: psycopg.Connection, items: list[dict[str, Any]], f: dict, expected: Any) -> None:
    want = [r["id"] for r in items if expected is None or expected(r)]
    assert python_ids(conn, f) == want
    assert sql_ids(conn, f) == want
    assert [r["id"] for r in items if matches(r, f)] == want


def test_empty_filters(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    assert as_filter(None).is_empty() and as_filter({}).is_empty() and as_filter(None) == NO_FILTER
    assert not as_filter({"n": 1}).is_empty()
    assert build_filter(conn, TABLE, {"n": {"$nin": []}}) == "true"  # keeps every row: no filter
    row = conn.execute("SELECT pgembed.filter_sql('items', NULL), pgembed.filter_sql('items', '{}')").fetchone()
    assert row == ("true", "true")


def test_a_flat_filter_seen_before_is_the_same_filter() -> None:
    # Flat dicts are remembered by their items and the items' types (as_filter's fast path): equal Python keys
    # that are different filters stay apart, and a refused dict is refused every time.
    assert as_filter({"n": 1}) == as_filter({"n": 1}) == as_filter({"n": 1.0})
    assert as_filter({"n": True}).json == '{"n":true}' and as_filter({"n": 1}).json == '{"n":1}'
    assert as_filter({"b": "x", "a": None}).json == as_filter({"a": None, "b": "x"}).json == '{"a":null,"b":"x"}'
    for _ in range(2):
        with pytest.raises(InvalidFilterError, match="NUL"):
            as_filter({"title": "a\x00b"})
        with pytest.raises(InvalidFilterError, match="finite"):
            as_filter({"x": float("nan")})


def test_python_only_values(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    """date objects for date columns, Decimal for numbers, tuples for lists."""
    from decimal import Decimal

    f = {"day": {"$gte": dt.date(2020, 2, 29)}, "x": {"$lt": Decimal("0.2")}, "n": {"$in": (1, 2, 3)}}
    want = [
        r["id"] for r in items
        if r["day"] is not None and r["day"] >= dt.date(2020, 2, 29) and r["x"] is not None and r["x"] < 0.2
        and r["n"] in (1, 2, 3)
    ]
    assert python_ids(conn, f) == want


def test_other_categories_are_cast_by_the_server(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE items SET u = %s WHERE id < 3", (uuid,))
        assert python_ids(conn, {"u": uuid}) == [0, 1, 2]
        assert sql_ids(conn, {"u": uuid}) == [0, 1, 2]
        assert python_ids(conn, {"u": {"$ne": uuid.upper()}}) == list(range(3, 40))
    for bad in ({"u": "not-a-uuid"}, {"day": "2020-13-45"}, {"day": {"$in": ["2020-01-01", "soon"]}}):
        column = next(iter(bad))
        with pytest.raises(InvalidFilterError, match=f"column '{column}'.*is not a valid"):
            python_ids(conn, bad)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"column '{column}'.*is not a valid"):
            sql_ids(conn, bad)
    with pytest.raises(InvalidFilterError, match="column 'u'.*needs a string"):
        python_ids(conn, {"u": 5})


# -- invalid filters ----------------------------------------------------------------------------------------
INVALID = [
    ({"nope": 1}, "unknown column 'nope'"),
    ({"$where": "1=1"}, "unknown operator '\\$where'"),
    ({"title": {"$regex": "^a"}}, "column 'title': unknown operator '\\$regex'"),
    ({"title": {"a": 1}}, "column 'title': unknown operator 'a'"),
    ({"title": {}}, "column 'title': empty operator object"),
    ({"n": "5"}, "column 'n' \\(integer\\): \\$eq needs a number, got string"),
    ({"n": True}, "column 'n' \\(integer\\): \\$eq needs a number, got boolean"),
    ({"n": [1, 2]}, "column 'n' \\(integer\\): \\$eq needs a number, got array"),
    ({"x": {"$gt": "NaN"}}, "column 'x' \\(double precision\\): \\$gt needs a number"),
    ({"title": 5}, "column 'title' \\(text\\): \\$eq needs a string, got number"),
    ({"flag": 1}, "column 'flag' \\(boolean\\): \\$eq needs true or false, got number"),
    ({"day": 20200101}, "column 'day' \\(date\\): \\$eq needs a date/time"),
    ({"n": {"$lt": None}}, "column 'n' \\(integer\\): \\$lt needs a non-null value"),
    ({"n": {"$in": 3}}, "column 'n': \\$in needs an array of values, got number"),
    ({"n": {"$nin": "abc"}}, "column 'n': \\$nin needs an array of values, got string"),
    ({"n": {"$in": [1, "2"]}}, "column 'n' \\(integer\\): \\$in needs a number, got string"),
    ({"n": {"$between": [1]}}, "column 'n': \\$between needs an array \\[low, high\\], got an array of 1"),
    ({"n": {"$between": 1}}, "column 'n': \\$between needs an array \\[low, high\\], got number"),
    ({"n": {"$between": [None, 3]}}, "column 'n' \\(integer\\): \\$between needs a non-null value"),
    ({"n": {"$exists": 1}}, "column 'n': \\$exists needs true or false"),
    ({"$and": []}, "\\$and needs a non-empty array"),
    ({"$or": {"n": 1}}, "\\$or needs a non-empty array of filters, got object"),
    ({"$or": [[{"n": 1}]]}, "\\$or needs an array of filter objects"),
    ({"$not": [{"n": 1}]}, "\\$not needs a filter object, got array"),
    ({"$not": None}, "\\$not needs a filter object, got null"),
    ({"$and": [{"$not": {"$or": [{"n": {"$regex": 1}}]}}]}, "column 'n': unknown operator"),
]


@pytest.mark.parametrize(("f", "message"), INVALID)
def test_invalid_filters_are_rejected_by_both(
    conn: psycopg.Connection, items: list[dict[str, Any]], f: dict, message: str
) -> None:
    before = table_state(conn, "items")
    with pytest.raises(InvalidFilterError, match=message):
        python_ids(conn, f)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        sql_ids(conn, f)
    assert table_state(conn, "items") == before


def test_too_deep(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    f: dict[str, Any] = {"n": 1}
    for _ in range(32):
        f = {"$and": [f]}
    assert python_ids(conn, f) == sql_ids(conn, f)  # 32 levels: allowed
    f = {"$or": [f]}
    with pytest.raises(InvalidFilterError, match="nested deeper than 32"):
        python_ids(conn, f)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="nested deeper than 32"):
        sql_ids(conn, f)


@pytest.mark.parametrize("where", ["n > 1", "1=1; DROP TABLE items", 5, 2.5, b"n > 1", [{"n": 1}], ("n", 1)])
def test_only_dicts_and_sqlalchemy_are_accepted(conn: psycopg.Connection, items: list, where: Any) -> None:
    with pytest.raises(InvalidFilterError, match="a filter must be None, a dict"):
        build_filter(conn, TABLE, where)
    with pytest.raises(InvalidFilterError, match="sqlalchemy.text"):
        as_filter(where)


def test_invalid_filter_error_is_an_input_error() -> None:
    assert issubclass(InvalidFilterError, InvalidInputError) and issubclass(InvalidFilterError, ValueError)


def test_nan_and_infinity(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidFilterError, match="filter value at 'x.\\$gte' is .*: filters take finite numbers"):
            python_ids(conn, {"x": {"$gte": value}})
    # JSON has no NaN: the SQL side can only be handed strings, which a numeric column refuses.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="needs a number, got string"):
        sql_ids(conn, {"x": "Infinity"})


# -- hostile input ----------------------------------------------------------------------------------------------
HOSTILE_COLUMNS = ['x"; DROP TABLE items; -- ', "n; DROP TABLE items", 'title"', "n\x00", "N", " n", "items.n", "*"]


@pytest.mark.parametrize("column", HOSTILE_COLUMNS)
def test_hostile_column_names(conn: psycopg.Connection, items: list[dict[str, Any]], column: str) -> None:
    before = table_state(conn, "items")
    with pytest.raises(InvalidFilterError, match="unknown column" if "\x00" not in column else "NUL character"):
        python_ids(conn, {column: 1})
    if "\x00" not in column:  # jsonb cannot hold a NUL character at all
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown column"):
            sql_ids(conn, {column: 1})
    assert table_state(conn, "items") == before


def test_a_column_with_a_hostile_name_is_just_a_column(conn: psycopg.Connection, items: list) -> None:
    want = [r["id"] for r in items if r[ODD] is not None and r[ODD] >= 1]
    assert python_ids(conn, {ODD: {"$gte": 1}}) == want == sql_ids(conn, {ODD: {"$gte": 1}})


HOSTILE_VALUES = [
    "'; DROP TABLE items; --",
    "a' OR 'a'='a",
    "\\'; DROP TABLE items; --",
    "\\",
    "$$; DROP TABLE items; $$",
    "%s %(q)s %% %",
    "ünï\u200bcode\U0001f600",
    "E'\\x00'",
    '"',
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_are_plain_values(conn: psycopg.Connection, items: list, value: str) -> None:
    before = table_state(conn, "items")
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE items SET title = %s WHERE id = 5", (value,))
        for f in ({"title": value}, {"title": {"$in": [value, "x"]}}, {"title": {"$gte": value, "$lte": value}}):
            assert python_ids(conn, f) == [5]
            assert sql_ids(conn, f) == [5]
    for f in ({"day": value}, {"u": value}):  # cast by the server: refused, naming the column
        with pytest.raises(InvalidFilterError, match=f"column '{next(iter(f))}'"):
            python_ids(conn, f)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            sql_ids(conn, f)
    assert table_state(conn, "items") == before


def test_nul_characters(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    before = table_state(conn, "items")
    for f in ({"title": "a\x00b"}, {"day": {"$in": ["2020-01-01\x00"]}}, {"u": "\x00"}):
        with pytest.raises(InvalidFilterError, match="NUL character"):
            python_ids(conn, f)
        with pytest.raises(psycopg.errors.UntranslatableCharacter):  # jsonb refuses \u0000 itself
            sql_ids(conn, f)
    assert table_state(conn, "items") == before


def test_unknown_table(conn: psycopg.Connection) -> None:
    from pgembed.errors import SchemaError

    with pytest.raises(SchemaError, match="does not exist"):
        build_filter(conn, sql.Identifier("no_such_table"), {"n": 1})
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT pgembed.filter_sql('no_such_table', '{}')")


# -- SQLAlchemy expressions ---------------------------------------------------------------------------------
class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None]
    n: Mapped[int | None]
    x: Mapped[float | None]
    flag: Mapped[bool | None]
    day: Mapped[dt.date | None]


def test_sqlalchemy_expressions(conn: psycopg.Connection, items: list[dict[str, Any]]) -> None:
    def ids(pred: Any) -> list[int]:
        return [r["id"] for r in items if pred(r)]

    cases: list[tuple[Any, Any]] = [
        (sa.column("n") >= 2, lambda r: r["n"] is not None and r["n"] >= 2),
        (sa.text("n >= 2"), lambda r: r["n"] is not None and r["n"] >= 2),
        (sa.text("n >= :q AND title LIKE 'a%'").bindparams(q=-1),
         lambda r: r["n"] is not None and r["n"] >= -1 and r["title"] is not None and r["title"].startswith("a")),
        (Item.n.in_([1, 2, 3]) & Item.title.is_not(None),
         lambda r: r["n"] in (1, 2, 3) and r["title"] is not None),
        (sa.or_(Item.day > dt.date(2020, 2, 1), Item.flag.is_(True)),
         lambda r: (r["day"] is not None and r["day"] > dt.date(2020, 2, 1)) or r["flag"] is True),
        (Item.title == "50%", lambda r: r["title"] == "50%"),
        (Item.title == "%(q)s", lambda r: r["title"] == "%(q)s"),
        (Item.flag, lambda r: r["flag"] is True),
        (sa.not_(Item.x.between(0, 1)), lambda r: r["x"] is not None and not 0 <= r["x"] <= 1),
    ]
    for expression, pred in cases:
        assert python_ids(conn, expression) == ids(pred), as_filter(expression).clause


def test_sqlalchemy_values_are_bound_as_literals(conn: psycopg.Connection, items: list) -> None:
    f = as_filter(sa.text("n = :q").bindparams(q=1))
    assert f.clause == "n = 1::INTEGER" and f.identity == "sql:" + f.clause  # SQLAlchemy's own cast
    assert python_ids(conn, sa.text("n = :q").bindparams(q=1)) == [r["id"] for r in items if r["n"] == 1]
    assert "items." not in (as_filter(Item.n > 1).clause or "")  # unqualified names
    hostile = "'; DROP TABLE items; --"
    assert python_ids(conn, Item.title == hostile) == []
    assert as_filter(Item.title == hostile).clause == "title = '" + hostile.replace("'", "''") + "'::VARCHAR"


def test_sqlalchemy_non_filters_are_rejected() -> None:
    with pytest.raises(InvalidFilterError, match="boolean expression"):
        as_filter(Item.n)
    with pytest.raises(InvalidFilterError, match="boolean expression or sqlalchemy.text"):
        as_filter(sa.select(Item.id))


def test_filter_passes_through() -> None:
    f = Filter("sql:true", clause="true")
    assert as_filter(f) is f


# -- filter identity ------------------------------------------------------------------------------------------
def test_identity_is_by_value() -> None:
    """Equal filters have equal identities (the planner's cache, batch groups and advise go by it)."""
    from decimal import Decimal

    import numpy as np

    same = [{"year": 2020, "c": "a"}, {"c": "a", "year": 2020.0}, {"c": "a", "year": Decimal("2020.00")},
            {"c": "a", "year": np.int64(2020)}]
    assert len({filter_identity(f) for f in same}) == 1
    assert filter_identity({"year": True}) != filter_identity({"year": 1})
    assert filter_identity({"year": "2020"}) != filter_identity({"year": 2020})
    assert canonical_json({"d": dt.date(2020, 2, 29), "t": (1, 2.5)}) == '{"d":"2020-02-29","t":[1,2.5]}'
    assert filter_identity(None) == filter_identity({}) == ""
    with pytest.raises(InvalidFilterError, match="keys must be strings"):
        as_filter({1: 2})
    with pytest.raises(InvalidFilterError, match="set, which a filter cannot hold"):
        as_filter({"n": {"$in": {1, 2}}})


def test_function_files_are_re_appliable(conn: psycopg.Connection, items: list) -> None:
    """Applying every function file again changes nothing (CREATE OR REPLACE), and the filter compiler is
    there for every role."""
    from pgembed.db.functions import FUNCTION_FILES, apply_functions

    before = python_ids(conn, {"n": {"$gte": 1}})
    with conn.transaction():
        apply_functions(conn, FUNCTION_FILES)
    assert python_ids(conn, {"n": {"$gte": 1}}) == before
    row = conn.execute(
        "SELECT provolatile, has_function_privilege('public', oid, 'EXECUTE') FROM pg_proc "
        "WHERE oid = 'pgembed.filter_sql(regclass, jsonb)'::regprocedure"
    ).fetchone()
    assert row == ("s", True)
