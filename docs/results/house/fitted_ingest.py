"""Trigger ingest with the fitted parameters named by their readers (pgembed._fitted_*) against the same trigger
with each reader's call replaced by the parameter's literal (the body before catalog v10): two collections on
one embedded server, the same 20,000 rows, alternating, 6 rounds.

    .venv/bin/python docs/results/house/fitted_ingest.py <pydocs-minilm folder> <spec> [table|companion]
"""
import json, re, statistics, sys, time
import numpy as np, psycopg
from psycopg import sql
import pgembed
from pgembed.server import EmbeddedServer, make_server_dirs
from pathlib import Path

data = Path(sys.argv[1])
x = np.load(data / "base.f16.npy")[:20000].astype(np.float32)
d = Path("/tmp/pgdev"); make_server_dirs(d)
dsn = EmbeddedServer(d / "data").ensure_running()
spec = sys.argv[2]
with psycopg.connect(dsn, autocommit=True) as c:
    c.execute("DROP DATABASE IF EXISTS fitted WITH (FORCE)"); c.execute("CREATE DATABASE fitted")
from psycopg.conninfo import make_conninfo
dsn2 = make_conninfo(dsn, dbname="fitted")
with pgembed.connect(dsn2, migrate=True) as db:
    print(db.kernels())
    for name in ("readers", "inlined"):
        coll = db.create_collection(name, 384, metric="ip", placement=sys.argv[3] if len(sys.argv) > 3 else "table")
        coll.ingest(np.arange(2000), x[:2000])
        coll.add_codec("c", spec)
    conn = db.conn
    conn.autocommit = True
    # "inlined": its trigger's body with each reader's call replaced by the parameter's literal, as before
    info = db.collection("inlined").info
    fn = f"pgembed.keep_codes_{info.id}()"
    src = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", (fn,)).fetchone()[0]
    values = dict(((i, dg), v) for i, dg, v in conn.execute("SELECT codec_id, digest, coalesce(as_vector::text, as_vectors::text, as_integers::text) FROM pgembed.fitted_parameters"))
    pat = re.compile(r'"pgembed"\."_fitted_(?:vector|vectors|integers)"\((\d+), \'([0-9a-f]+)\'\)')
    new = pat.sub(lambda m: "'" + values[(int(m.group(1)), m.group(2))].replace("'", "''") + "'", src)
    assert new != src and "_fitted" not in new
    cfg = conn.execute("SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure", (fn,)).fetchone()[0]
    path = cfg[0].split("=", 1)[1]
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path = {} AS {}")
                 .format(sql.Identifier("pgembed", f"keep_codes_{info.id}"), sql.SQL(path), sql.Literal(new)))
    conn.execute("CREATE UNLOGGED TABLE staging (id bigint, embedding vector(384))")
    with conn.cursor().copy("COPY staging FROM STDIN") as cp:
        for i, v in enumerate(x):
            cp.write_row((100000 + i, "[" + ",".join(map(repr, v.tolist())) + "]"))
    res = {"readers": [], "inlined": []}
    for r in range(6):
        for name in ("readers", "inlined") if r % 2 == 0 else ("inlined", "readers"):
            conn.execute(f"DELETE FROM {name} WHERE id >= 100000")
            conn.execute(f"VACUUM {name}")
            with psycopg.connect(dsn2, autocommit=True) as w:  # a new session: the plan made on its first row
                t = time.perf_counter()
                w.execute(f"INSERT INTO {name} (id, embedding) SELECT id, embedding FROM staging")
                res[name].append(len(x) / (time.perf_counter() - t))
    # Every row's code, compared between the two tables of codes (the user's table, or the companion).
    tables = [db.collection(n).info.codes_table for n in ("readers", "inlined")]
    same = conn.execute(sql.SQL("SELECT count(*) FROM {} AS r JOIN {} AS i USING (id) "
                                "WHERE r.embedding_c::text = i.embedding_c::text").format(*tables)).fetchone()[0]
    print(json.dumps({"spec": spec, "placement": sys.argv[3] if len(sys.argv) > 3 else "table", "rows": len(x), "median_rows_per_s": {k: statistics.median(v) for k, v in res.items()},
                      "runs": res, "same_codes": same}))
