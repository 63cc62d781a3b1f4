"""Collection.search() latency, old (Python planner, commit 48ef77f) against new (server planner,
pgembed._prepare_search), on pydocs-minilm (102,135 x 384, bq2 codes + HNSW, B-trees on n_words, package).

Every figure comes from a fresh worker process that imports one version only:
  old: PYTHONPATH=/tmp/oldtree    (git worktree of 48ef77f; pgembed/sql, pgembed/migrations symlinked)
  new: PYTHONPATH=/tmp/newsnap    (a copy of /work/main's working tree pgembed/, sql/, migrations/, taken when
                                   the measurement started, so that edits made meanwhile do not mix in)
Workers run with cwd=/tmp (with cwd=/work/main, sys.path[0]='' would shadow PYTHONPATH for `python -c`).

Commands (run from anywhere, e.g. cd /work/main; each is one command):
  .venv/bin/python docs/results/house/measure.py snapshot   # copy the working tree to /tmp/newsnap, symlink old
  .venv/bin/python docs/results/house/measure.py setup      # start the server /tmp/house-pg, build both DBs, VACUUM FULL
  .venv/bin/python docs/results/house/measure.py run --rounds 10  # interleaved rounds -> results.json (about 9 min)
  .venv/bin/python docs/results/house/measure.py extra      # exact-plan id check, REINDEX control, breakdown
  .venv/bin/python docs/results/house/measure.py stop       # stop the server
  .venv/bin/python docs/results/house/measure.py all --rounds 10  # the five above in turn (about 15 min)

A round runs, for each version (the order alternates round to round: old first in even rounds), three
workers: `warm` (1,000 queries over 3 recurring filters, a warm-up pass, then the timed pass), `cold` (a
30-search connection warm-up on the recurring filters, then 300 queries each with a filter never seen
before), `split` (the cold filters again in a fresh process: planning alone vs the statement alone). Before
the rounds, `plans` lists each filter's plan and `ids` compares old and new ids on 100 queries per filter
kind (each also against the exact top-10 computed in numpy). k=10, default knobs everywhere.

Needs /tmp/oldtree, a git worktree of the old commit (git -C /work/main worktree add /tmp/oldtree 48ef77f),
and the data in /work/shared/data/pydocs-minilm. Raw figures: results.json; console output: run.log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAIN = Path("/work/main")
PYTHON = str(MAIN / ".venv/bin/python")
OLD, NEW = Path("/tmp/oldtree"), Path("/tmp/newsnap")
PATHS = {"old": OLD, "new": NEW}
DATA_DIR = "/tmp/house-pg"
DATA = Path("/work/shared/data/pydocs-minilm")
K = 10

# Recurring filters (warm): unfiltered, 78.6 % of rows, 49.0 % (B-tree on n_words): index plans in both versions.
WARM_FILTERS = [None, {"source": "man"}, {"n_words": {"$lt": 40}}]
MAN2 = {"source": "man", "section": "2"}  # 4.4 % of rows, an exact plan: in the plan listing and the id check


def cold_filter(i: int) -> dict:
    """A filter no other query uses: man pages within a word range (300 distinct ranges)."""
    return {"source": "man", "n_words": {"$gte": 20 + i // 10, "$lt": 60 + 5 * (i % 10)}}


# -- orchestration (any python: only starts workers) ---------------------------------------------------------
def worker(version: str, task: str, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(PATHS[version]), HOUSE_DSN=server_dsn())
    args = [PYTHON, str(Path(__file__).resolve()), "worker", version, task, json.dumps(extra)]
    started = time.monotonic()
    out = subprocess.run(args, env=env, cwd="/tmp", capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"worker {version} {task} failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - started, 2)
    result["loadavg_after"] = os.getloadavg()
    return result


def server_dsn(db: str = "postgres") -> str:
    if os.environ.get("HOUSE_DSN"):
        return os.environ["HOUSE_DSN"].replace("/postgres?", f"/{db}?")
    env = dict(os.environ, PYTHONPATH=str(NEW))
    dsn = subprocess.run([PYTHON, "-c", f"from pgembed.server import EmbeddedServer; "
                          f"print(EmbeddedServer({DATA_DIR!r}).ensure_running())"],
                         env=env, cwd="/tmp", capture_output=True, text=True, check=True).stdout.strip()
    os.environ["HOUSE_DSN"] = dsn
    return dsn.replace("/postgres?", f"/{db}?")


def cmd_snapshot() -> None:
    for tree in (OLD,):
        for name in ("sql", "migrations"):
            link = tree / "pgembed" / name
            if not link.exists():
                link.symlink_to(tree / name)
    if NEW.exists():
        shutil.rmtree(NEW)
    for name in ("pgembed", "sql", "migrations"):
        shutil.copytree(MAIN / name, NEW / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("sql", "migrations"):
        (NEW / "pgembed" / name).symlink_to(NEW / name)
    for version, tree in PATHS.items():
        got = subprocess.run([PYTHON, "-c", "import pgembed; print(pgembed.__file__)"], cwd="/tmp", text=True,
                             env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True).stdout.strip()
        print(version, got)
        assert got.startswith(str(tree)), got


def cmd_setup() -> None:
    import psycopg

    dsn = server_dsn()
    print("server", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for version in PATHS:
            conn.execute(f"DROP DATABASE IF EXISTS house_{version}")
            conn.execute(f"CREATE DATABASE house_{version}")
    for version in PATHS:
        print(version, json.dumps(worker(version, "setup")))
    cmd_compact()


def cmd_compact() -> None:
    """VACUUM FULL + ANALYZE both tables: the codec backfill of each version leaves the heap with a different
    share of free space (measured: 37,961 pages old, 45,961 new, and ANALYZE then estimated 88,931 rows
    in the old table against 101,991), which is not what this measures. Rewritten, both heaps hold the
    rows in as many pages (25,534; the order of rows on them differs) and reltuples is exact; the rewrite
    rebuilds the indexes, HNSW included."""
    import psycopg

    for version in PATHS:
        with psycopg.connect(server_dsn(f"house_{version}"), autocommit=True) as conn:
            t = time.monotonic()
            conn.execute('VACUUM (FULL, ANALYZE) "docs"')
            row = conn.execute("SELECT reltuples, relpages, pg_total_relation_size(oid) FROM pg_class "
                               "WHERE relname = 'docs'").fetchone()
            print(version, "compacted", {"reltuples": row[0], "relpages": row[1], "total_bytes": row[2],
                                         "seconds": round(time.monotonic() - t, 1)})


def cmd_stop() -> None:
    env = dict(os.environ, PYTHONPATH=str(NEW))
    subprocess.run([PYTHON, "-c", f"from pgembed.server import EmbeddedServer; "
                    f"print(EmbeddedServer({DATA_DIR!r}).stop())"], env=env, cwd="/tmp", check=True)


def cmd_run(rounds: int) -> None:
    results: dict = {"machine": machine(), "k": K, "warm_filters": WARM_FILTERS,
                     "cold_filters": "source=man, n_words in [20 + i//10, 60 + 5*(i%10)), i < 300",
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "rounds": []}
    out = HERE / "results.json"
    results["plans"] = {v: worker(v, "plans") for v in PATHS}
    print("plans", json.dumps(results["plans"]))
    results["ids"] = ids_agreement()
    print("ids", json.dumps(results["ids"]["summary"]))
    for r in range(rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        one: dict = {"round": r, "order": order, "loadavg_before": os.getloadavg()}
        for task in ("warm", "cold", "split"):
            for v in order:
                one[f"{task}_{v}"] = worker(v, task)
        one["ratios"] = {
            "warm_mean": one["warm_new"]["mean_ms"] / one["warm_old"]["mean_ms"],
            "warm_median": one["warm_new"]["median_ms"] / one["warm_old"]["median_ms"],
            "cold_mean": one["cold_new"]["mean_ms"] / one["cold_old"]["mean_ms"],
            "cold_median": one["cold_new"]["median_ms"] / one["cold_old"]["median_ms"],
        }
        results["rounds"].append(one)
        print(f"round {r}", json.dumps({k: round(v, 3) for k, v in one["ratios"].items()}),
              "warm old/new ms", round(one["warm_old"]["mean_ms"], 3), round(one["warm_new"]["mean_ms"], 3),
              "cold old/new ms", round(one["cold_old"]["mean_ms"], 3), round(one["cold_new"]["mean_ms"], 3),
              flush=True)
        out.write_text(json.dumps(results, indent=1))
    results["summary"] = summarize(results["rounds"])
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results["summary"], indent=1))


def ids_agreement() -> dict:
    old, new = worker("old", "ids"), worker("new", "ids")
    summary = {}
    for kind in old["ids"]:
        a, b = old["ids"][kind], new["ids"][kind]
        same_list = sum(x == y for x, y in zip(a, b, strict=True))
        same_set = sum(set(x) == set(y) for x, y in zip(a, b, strict=True))
        overlap = statistics.mean(len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b, strict=True))
        summary[kind] = {"queries": len(a), "identical_lists": same_list, "identical_sets": same_set,
                         "mean_overlap": overlap, "recall_old": old["recall"][kind],
                         "recall_new": new["recall"][kind], "plans_old": old["plans"][kind],
                         "plans_new": new["plans"][kind],
                         "differing_queries": [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y][:20]}
    return {"summary": summary, "old": old, "new": new}


def summarize(rounds: list[dict]) -> dict:
    def spread(values: list[float]) -> dict:
        return {"median": statistics.median(values), "min": min(values), "max": max(values),
                "values": [round(v, 4) for v in values]}

    s: dict = {"rounds": len(rounds)}
    for task in ("warm", "cold"):
        for stat in ("mean_ms", "median_ms"):
            for v in PATHS:
                s[f"{task}_{v}_{stat}"] = spread([r[f"{task}_{v}"][stat] for r in rounds])
            s[f"{task}_ratio_{stat}"] = spread([r[f"{task}_new"][stat] / r[f"{task}_old"][stat] for r in rounds])
    for part in ("plan_median_ms", "statement_median_ms"):
        s[f"split_ratio_{part}"] = spread([r["split_new"][part] / r["split_old"][part] for r in rounds])
    for v in PATHS:
        for part in ("plan_only_mean_us", "plan_only_median_us"):
            s[f"warm_{v}_{part}"] = spread([r[f"warm_{v}"][part] for r in rounds])
        for part in ("plan_median_ms", "statement_median_ms", "plan_mean_ms", "statement_mean_ms", "select1_median_ms"):
            s[f"split_{v}_{part}"] = spread([r[f"split_{v}"][part] for r in rounds])
    return s


def machine() -> dict:
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg": os.getloadavg()}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
        info["mem_total"] = next(line.split(":", 1)[1].strip() for line in open("/proc/meminfo")
                                 if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        info["working_tree_state"] = subprocess.run(
            "cd /work/main && git rev-parse HEAD && (git diff HEAD; git ls-files --others --exclude-standard "
            "pgembed sql migrations | xargs cat) | sha256sum", shell=True, capture_output=True, text=True).stdout
        info["snapshot_matches_working_tree"] = subprocess.run(
            ["diff", "-rq", "-x", "__pycache__", "-x", "sql", "-x", "migrations", str(MAIN / "pgembed"),
             str(NEW / "pgembed")], capture_output=True).returncode == 0
    except OSError:
        pass
    return info


# -- workers (one version imported) --------------------------------------------------------------------------
class Version:
    """The two versions' few differences: plan kinds (str vs enum), cache clearing, the planning call."""

    def __init__(self, version: str) -> None:
        import numpy as np
        import pgembed

        assert pgembed.__file__.startswith(str(PATHS[version])), pgembed.__file__
        self.version = version
        self.np = np
        db = os.environ.get("HOUSE_DB_OVERRIDE") or f"house_{version}"
        self.db = pgembed.connect(server_dsn(db), migrate=True)
        self.coll = None

    def open(self):
        self.coll = self.db.collection("docs")
        return self.coll

    def kind(self, plan) -> str:
        return getattr(plan.kind, "value", plan.kind)

    def forget(self) -> None:
        if self.version == "new":
            self.coll.context.forget()
        else:
            self.coll.searcher.forget()

    def plan_only(self, where):
        """Everything search() does before its statement (cache miss for a new filter), returning what
        run_only needs."""
        if self.version == "new":
            import pgembed
            from pgembed.engine import search as s

            return s.prepare(self.coll.context, pgembed.planning.filters.as_filter(where), K, pgembed.SearchParams())
        searcher = self.coll.searcher
        compiled, doc = searcher.prepare(where)
        chosen = searcher.plan(compiled, k=K, codec=None, ef_search=None, oversample=None, recall=None,
                               plan="auto", filter_doc=doc)
        return chosen, compiled

    def run_only(self, prepared, q):
        if self.version == "new":
            from pgembed.engine import search as s

            return s.run(self.coll.context, prepared, q)
        chosen, compiled = prepared
        return self.coll.searcher._run(chosen, q, compiled, [])


def load_queries():
    import numpy as np

    return np.load(DATA / "queries.npy").astype(np.float32)


def stats(times_ns: list[int]) -> dict:
    ms = [t / 1e6 for t in times_ns]
    ms_sorted = sorted(ms)
    return {"n": len(ms), "mean_ms": statistics.fmean(ms), "median_ms": statistics.median(ms),
            "p10_ms": ms_sorted[len(ms) // 10], "p90_ms": ms_sorted[(9 * len(ms)) // 10],
            "max_ms": ms_sorted[-1], "total_s": sum(ms) / 1e3}


def count_planning(v: Version) -> dict:
    """Count cache misses: new code's _prepare_search calls, old code's EXPLAIN estimates."""
    counter = {"planning_calls": 0}
    if v.version == "new":
        from pgembed.engine import search as s

        session = v.coll.context.session
        value = session.value

        def counted(query, *args, **kwargs):
            if query is s.PREPARE_SEARCH:
                counter["planning_calls"] += 1
            return value(query, *args, **kwargs)

        session.value = counted
    else:
        searcher = v.coll.searcher
        estimate = searcher.estimate_rows
        cache = searcher._estimates

        def counted_estimate(where):
            if searcher._filter_key(where) not in cache:
                counter["planning_calls"] += 1
            return estimate(where)

        searcher.estimate_rows = counted_estimate
    return counter


def task_setup(v: Version, _: dict) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    t0 = time.monotonic()
    base = np.load(DATA / "base.f16.npy").astype(np.float32)
    attrs = pq.read_table(DATA / "attrs.parquet").to_pydict()
    assert attrs["id"] == list(range(len(base)))
    coll = v.db.create_collection("docs", 384, attrs={"source": "text", "section": "text", "package": "text",
                                                      "n_words": "integer"})
    times = {}
    for start in range(0, len(base), 20_000):
        stop = min(start + 20_000, len(base))
        coll.ingest(np.arange(start, stop), base[start:stop],
                    {c: attrs[c][start:stop] for c in ("source", "section", "package", "n_words")})
    times["ingest_s"] = time.monotonic() - t0
    # bq2 fits per-dimension quantiles: fit both versions on the same fixed sample, so their codes agree.
    fit_on = base[np.random.default_rng(0).choice(len(base), 50_000, replace=False)]
    t = time.monotonic()
    coll.add_codec("bq2", "bq2", fit_on=fit_on)
    times["codec_s"] = time.monotonic() - t
    t = time.monotonic()
    coll.create_index("bq2", "hnsw")
    times["hnsw_s"] = time.monotonic() - t
    table = coll.info.table_name
    v.db.execute(f'CREATE INDEX docs_n_words ON "{table}" (n_words)')
    v.db.execute(f'CREATE INDEX docs_package ON "{table}" (package)')
    v.db.execute(f'ANALYZE "{table}"')
    codecs = [(c.name, str(getattr(c.kind, "value", c.kind)), c.column_name, c.sql_type) for c in coll.codecs()]
    rows = v.db.value(f'SELECT count(*) FROM "{table}"')
    # the code columns' values (whatever the columns are called), hashed in id order
    codec_hash = v.db.value(
        "SELECT md5(string_agg(codes, '' ORDER BY id)) FROM (SELECT id, (SELECT string_agg(value::text, ',') "
        "FROM jsonb_each(to_jsonb(t) - 'id' - 'embedding' - 'source' - 'section' - 'package' - 'n_words')) "
        f'AS codes FROM "{table}" AS t) AS x')
    return {"rows": rows, "codecs": codecs, "indexes": [str(i) for i in coll.indexes()], "times": times,
            "table": table, "code_md5": codec_hash}


def task_plans(v: Version, _: dict) -> dict:
    coll = v.open()
    q = load_queries()
    out = {}
    for f in [*WARM_FILTERS, MAN2]:
        plan = coll.search(q[0], K, where=f).plan
        out[json.dumps(f)] = {"kind": v.kind(plan), "reason": plan.reason, "codec": plan.codec,
                              "candidates": plan.candidates, "ef_search": plan.ef_search,
                              "estimated_rows": plan.estimated_rows, "iterative_scan": str(plan.iterative_scan)}
    kinds: dict = {}
    for i in range(300):
        kind = v.kind(coll.search(q[i], K, where=cold_filter(i)).plan)
        kinds[kind] = kinds.get(kind, 0) + 1
    out["cold_filter_plan_kinds"] = kinds
    return out


def task_warm(v: Version, _: dict) -> dict:
    coll = v.open()
    q = load_queries()
    filters = [WARM_FILTERS[i % len(WARM_FILTERS)] for i in range(len(q))]
    t = time.perf_counter()
    for i in range(len(q)):  # warm-up pass
        coll.search(q[i], K, where=filters[i])
    warmup_s = time.perf_counter() - t
    counter = count_planning(v)
    times, per_filter = [], {json.dumps(f): [] for f in WARM_FILTERS}
    clock = time.perf_counter_ns
    for i in range(len(q)):
        t0 = clock()
        coll.search(q[i], K, where=filters[i])
        dt = clock() - t0
        times.append(dt)
        per_filter[json.dumps(filters[i])].append(dt)
    # The planning step alone, warm (filters cached): what search() does before its statement.
    plan_times = []
    for i in range(len(q)):
        t0 = clock()
        v.plan_only(filters[i])
        plan_times.append(clock() - t0)
    p = stats(plan_times)
    return {**stats(times), "warmup_s": warmup_s, **counter, "plan_only_mean_us": p["mean_ms"] * 1e3,
            "plan_only_median_us": p["median_ms"] * 1e3,
            "per_filter": {f: stats(ts) for f, ts in per_filter.items()}}


def task_cold(v: Version, _: dict) -> dict:
    coll = v.open()
    q = load_queries()
    for i in range(30):  # the connection, catalog facts, codec and statement caches warmed on other filters
        coll.search(q[i], K, where=WARM_FILTERS[i % len(WARM_FILTERS)])
    counter = count_planning(v)
    times, kinds = [], {}
    clock = time.perf_counter_ns
    for i in range(300):
        f = cold_filter(i)
        t0 = clock()
        result = coll.search(q[i], K, where=f)
        times.append(clock() - t0)
        kind = v.kind(result.plan)
        kinds[kind] = kinds.get(kind, 0) + 1
    return {**stats(times), **counter, "plan_kinds": kinds}


def task_split(v: Version, _: dict) -> dict:
    coll = v.open()
    q = load_queries()
    for i in range(30):
        coll.search(q[i], K, where=WARM_FILTERS[i % len(WARM_FILTERS)])
    clock = time.perf_counter_ns
    plan_t, run_t, select1 = [], [], []
    for i in range(300):
        f = cold_filter(i)
        t0 = clock()
        prepared = v.plan_only(f)
        t1 = clock()
        v.run_only(prepared, q[i])
        t2 = clock()
        v.db.execute("SELECT 1").fetchone()
        t3 = clock()
        plan_t.append(t1 - t0)
        run_t.append(t2 - t1)
        select1.append(t3 - t2)
    p, r, s1 = stats(plan_t), stats(run_t), stats(select1)
    return {"plan_mean_ms": p["mean_ms"], "plan_median_ms": p["median_ms"], "statement_mean_ms": r["mean_ms"],
            "statement_median_ms": r["median_ms"], "select1_median_ms": s1["median_ms"],
            "plan": p, "statement": r, "select1": s1}


def task_ids(v: Version, _: dict) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    coll = v.open()
    q = load_queries()
    base = np.load(DATA / "base.f16.npy").astype(np.float32)
    attrs = pq.read_table(DATA / "attrs.parquet").to_pydict()
    source, section = np.array(attrs["source"]), np.array(attrs["section"])
    n_words = np.array(attrs["n_words"])
    masks = {"null": np.ones(len(base), bool), "man": source == "man", "short": n_words < 40,
             "man2": (source == "man") & (section == "2")}
    kinds = {"null": None, "man": WARM_FILTERS[1], "short": WARM_FILTERS[2], "man2": MAN2}
    norms = np.linalg.norm(base, axis=1)
    ids, recall, plans = {}, {}, {}
    sample = range(100, 200)  # queries 100..199
    for kind, f in [*kinds.items(), ("cold", None)]:
        got, hits, pk = [], [], {}
        for i in sample:
            where = cold_filter(i) if kind == "cold" else f
            result = coll.search(q[i], K, where=where)
            got.append([int(x) for x in result.ids])
            pk[v.kind(result.plan)] = pk.get(v.kind(result.plan), 0) + 1
            if kind == "cold":
                lo, hi = 20 + i // 10, 60 + 5 * (i % 10)
                mask = (source == "man") & (n_words >= lo) & (n_words < hi)
            else:
                mask = masks[kind]
            dist = 1 - (base @ q[i]) / (norms * np.linalg.norm(q[i]))
            dist[~mask] = np.inf
            truth = set(np.argsort(dist, kind="stable")[:K].tolist())
            hits.append(len(truth & set(got[-1])) / K)
        ids[kind], recall[kind], plans[kind] = got, float(np.mean(hits)), pk
    return {"ids": ids, "recall": recall, "plans": plans}


TASKS = {"setup": task_setup, "plans": task_plans, "warm": task_warm, "cold": task_cold, "split": task_split,
         "ids": task_ids}


BREAKDOWN_SQL = """
CREATE TEMP TABLE IF NOT EXISTS house_breakdown (i int, part text, ms double precision);
DO $house$
DECLARE
    c pgembed.collections;
    tbl regclass;
    f jsonb;
    clause text;
    estimate double precision;
    total double precision;
    chosen jsonb;
    st record;
    t timestamptz;
    answer jsonb;
BEGIN
    SELECT * INTO c FROM pgembed.collections WHERE name = 'docs';
    tbl := format('%I.%I', c.table_schema, c.table_name)::regclass;
    FOR i IN -30..299 LOOP  -- -30..-1: warm-up (plpgsql compiled, caches read) on other filters
        f := CASE WHEN i < 0 THEN jsonb_build_object('n_words', jsonb_build_object('$lt', 200 + i))
             ELSE jsonb_build_object('source', 'man', 'n_words',
                  jsonb_build_object('$gte', 20 + i / 10, '$lt', 60 + 5 * (i % 10))) END;
        t := clock_timestamp();
        PERFORM pgembed.check_search_params(10, NULL, NULL, NULL, 'auto');
        INSERT INTO house_breakdown VALUES (i, 'check_search_params', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        clause := pgembed.filter_sql(tbl, f);
        INSERT INTO house_breakdown VALUES (i, 'filter_sql', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        estimate := pgembed.estimate_rows(tbl, clause);
        INSERT INTO house_breakdown VALUES (i, 'estimate_rows (EXPLAIN)', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        total := pgembed.table_rows(tbl);
        INSERT INTO house_breakdown VALUES (i, 'table_rows', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        chosen := pgembed._plan(c.id, 10, NULL, NULL, NULL, NULL, 'auto', f, true, estimate, total, NULL);
        INSERT INTO house_breakdown VALUES (i, '_plan', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        SELECT * INTO st FROM pgembed._search_statements(c.id, chosen, clause, '{}');
        INSERT INTO house_breakdown VALUES (i, '_search_statements', 1e3 * extract(epoch FROM clock_timestamp() - t));
        t := clock_timestamp();
        answer := pgembed._prepare_search(c.id, f, NULL, 10, NULL, NULL, NULL, NULL, 'auto', '{}', NULL, NULL);
        INSERT INTO house_breakdown VALUES (i, 'whole _prepare_search (server side)', 1e3 * extract(epoch FROM clock_timestamp() - t));
    END LOOP;
END $house$;
"""


def task_breakdown(v: Version, _: dict) -> dict:
    """New code only: where the _prepare_search time goes, timed inside the server (no round trips)."""
    assert v.version == "new"
    v.open()
    v.db.execute(BREAKDOWN_SQL)
    rows = v.db.execute("SELECT part, avg(ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), count(*) "
                        "FROM house_breakdown WHERE i >= 0 GROUP BY part ORDER BY min(ctid)").fetchall()
    parts = {part: {"mean_ms": mean, "median_ms": median, "n": n} for part, mean, median, n in rows}
    # The same call at top level, as Python makes it: client wall time vs the server's own execution time.
    cid = v.coll.info.id
    call = ("SELECT pgembed._prepare_search(%s, %s::jsonb, NULL, 10, NULL, NULL, NULL, NULL, 'auto', "
            "'{}'::text[], NULL, NULL)")
    wall, server, select1 = [], [], []
    for i in range(300):
        f = json.dumps(cold_filter(i))
        t = time.perf_counter()
        v.db.execute(call, (cid, f)).fetchone()
        wall.append((time.perf_counter() - t) * 1e3)
        analyzed = v.db.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + call, (cid, f)).fetchone()
        server.append(analyzed[0][0]["Execution Time"])
        t = time.perf_counter()
        v.db.execute("SELECT 1").fetchone()
        select1.append((time.perf_counter() - t) * 1e3)
    top = {"client_wall_median_ms": statistics.median(wall), "server_execution_median_ms": statistics.median(server),
           "select1_median_ms": statistics.median(select1)}
    return {"parts": parts, "top_level": top}


def task_ids_exact(v: Version, _: dict) -> dict:
    """The id sample again with the knob plan="exact" (both versions: the filter compiled, exact statement)."""
    coll = v.open()
    q = load_queries()
    ids = {}
    for kind, f in [("null", None), ("man", WARM_FILTERS[1]), ("short", WARM_FILTERS[2]), ("man2", MAN2),
                    ("cold", None)]:
        got = []
        for i in range(100, 200):
            where = cold_filter(i) if kind == "cold" else f
            result = coll.search(q[i], K, where=where, plan="exact")
            assert v.kind(result.plan) == "exact"
            got.append([[int(x) for x in result.ids], [float(d) for d in result.distances]])
        ids[kind] = got
    return {"ids": ids}


TASKS.update({"breakdown": task_breakdown, "ids_exact": task_ids_exact})


def cmd_extra() -> None:
    """After `run`: the exact-plan id check, the REINDEX control for the index-plan id differences, and the
    server-side breakdown of _prepare_search, added to results.json."""
    import psycopg

    out = HERE / "results.json"
    results = json.loads(out.read_text())
    # 1. exact plans: ids and distances of the two versions
    old, new = worker("old", "ids_exact"), worker("new", "ids_exact")
    exact = {}
    for kind in old["ids"]:
        a, b = old["ids"][kind], new["ids"][kind]
        exact[kind] = {"queries": len(a), "identical_ids": sum(x[0] == y[0] for x, y in zip(a, b, strict=True)),
                       "max_distance_diff": max(abs(p - r) for x, y in zip(a, b, strict=True)
                                                for p, r in zip(x[1], y[1], strict=True))}
    results["ids_exact_plan"] = exact
    print("exact-plan ids", json.dumps(exact))
    # 2. control: the new code on a copy of house_new whose HNSW index is built again (REINDEX)
    dsn = server_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS house_new_reindexed")
        conn.execute("CREATE DATABASE house_new_reindexed TEMPLATE house_new")
    with psycopg.connect(server_dsn("house_new_reindexed"), autocommit=True) as conn:
        conn.execute("REINDEX INDEX docs_embedding_bq2_hnsw_idx")
    env_db = os.environ.get("HOUSE_DB_OVERRIDE")
    os.environ["HOUSE_DB_OVERRIDE"] = "house_new_reindexed"
    try:
        again = worker("new", "ids")
    finally:
        if env_db is None:
            os.environ.pop("HOUSE_DB_OVERRIDE")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP DATABASE house_new_reindexed")
    first = results["ids"]["new"]["ids"]
    control = {}
    for kind in first:
        a, b = first[kind], again["ids"][kind]
        control[kind] = {"queries": len(a), "identical_lists": sum(x == y for x, y in zip(a, b, strict=True)),
                         "mean_overlap": statistics.mean(len(set(x) & set(y)) / K for x, y in zip(a, b, strict=True)),
                         "recall_reindexed": again["recall"][kind]}
    results["ids_control_new_vs_new_reindexed"] = control
    print("control", json.dumps(control))
    # 3. where _prepare_search spends its time, inside the server
    results["prepare_breakdown"] = [worker("new", "breakdown") for _ in range(3)]
    for b in results["prepare_breakdown"]:
        print("breakdown", json.dumps({k: round(x["median_ms"], 3) for k, x in b["parts"].items()}),
              json.dumps({k: round(x, 3) for k, x in b["top_level"].items()}))
    out.write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["snapshot", "setup", "compact", "run", "extra", "stop", "all", "worker"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.command == "worker":
        version, task, extra = args.rest
        v = Version(version)
        result = TASKS[task](v, json.loads(extra))
        result["version"] = version
        print(json.dumps(result, default=str))
        return
    if args.command in ("snapshot", "all"):
        cmd_snapshot()
    if args.command in ("setup", "all"):
        cmd_setup()
    if args.command == "compact":
        cmd_compact()
    if args.command in ("run", "all"):
        cmd_run(args.rounds)
    if args.command in ("extra", "all"):
        cmd_extra()
    if args.command in ("stop", "all"):
        cmd_stop()


if __name__ == "__main__":
    main()
