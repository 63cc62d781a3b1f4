"""The kernels keep a backend's memory flat: after a first round of calls (caches, plans), more rounds of the
same calls in the same session add nothing to its memory contexts or, where the test can read it, to the
process's resident memory. (The benchmark runs a million calls: docs/benchmarks.md.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from tests.kernels.test_parity import array_text, pq_parameters

DIM = 32
ROWS = 2000

CALLS = {
    "encode_pq": "pgembed_kernels.encode_pq(v, %(columns)s::vector[], %(norms)s::vector[], 4)",
    "encode_int8": "pgembed_kernels.encode_int8(v, %(lo)s::vector, %(inv)s::vector)",
    "encode_thermometer": "pgembed_kernels.encode_thermometer(v, %(levels)s::vector[])",
    "encode_ivf": "pgembed_kernels.encode_ivf(v, %(rows)s::vector[])",
    "project": "pgembed_kernels.project(v, %(lo)s::vector, %(rows)s::vector[])",
    "rabitq_factors": "pgembed_kernels.rabitq_factors(v, %(lo)s::vector, v)",
    "pq_distance": "pgembed_kernels.pq_distance(pgembed_kernels.encode_pq(v, %(columns)s::vector[], "
                   "%(norms)s::vector[], 4), %(pq_table)s::float8[])",
    "sq8_distance": "pgembed_kernels.sq8_distance(pgembed_kernels.encode_int8(v, %(lo)s::vector, %(inv)s::vector), "
                    "%(sq8_table)s::float8[])",
    "bits_distance": "pgembed_kernels.bits_distance(pgembed_kernels.encode_thermometer(v, %(levels)s::vector[]), "
                     "%(bits_table)s::float8[])",
}
STATEMENTS = {name: f"SELECT count({call}) = {ROWS * 10} FROM vs CROSS JOIN generate_series(1, 10)"
              for name, call in CALLS.items()}
STATEMENTS["exact_topk"] = ("SELECT cardinality((pgembed_kernels.exact_topk(g * 100000 + n, v, "
                            "ARRAY[%(query)s::vector, %(query)s::vector], 5, 'cosine')).id) = 10 "
                            "FROM (SELECT row_number() OVER () AS n, v FROM vs) AS r "
                            "CROSS JOIN generate_series(1, 10) AS g")
STATEMENTS["probe_topk"] = ("SELECT cardinality((pgembed_kernels.probe_topk(g * 100000 + n, (n %% 16)::integer, v, "
                            "ARRAY[%(query)s::vector, %(query)s::vector], ARRAY[1, 2, 3, 4], 5, 'l2')).id) = 10 "
                            "FROM (SELECT row_number() OVER () AS n, v FROM vs) AS r "
                            "CROSS JOIN generate_series(1, 10) AS g")
STATEMENTS["estimate_topk"] = ("SELECT cardinality((pgembed_kernels.estimate_topk(g * 100000 + n, "
                               "pgembed_kernels.encode_pq(v, %(columns)s::vector[], %(norms)s::vector[], 4), "
                               "ARRAY[%(pq_table)s::float8[], %(pq_table)s::float8[]], 5)).id) = 10 "
                               "FROM (SELECT row_number() OVER () AS n, v FROM vs) AS r "
                               "CROSS JOIN generate_series(1, 10) AS g")


def backend_memory(conn: psycopg.Connection, pid: int) -> tuple[int, int | None]:
    """(bytes in the backend's memory contexts, resident bytes of its process when /proc shows it)."""
    contexts = conn.execute("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts").fetchone()[0]
    status, command = Path(f"/proc/{pid}/status"), Path(f"/proc/{pid}/cmdline")
    resident = None
    if command.exists() and b"postgres" in command.read_bytes():  # the server runs on this machine
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                resident = int(line.split()[1]) * 1024
    return int(contexts), resident


@pytest.mark.parametrize("function", list(STATEMENTS))
def test_memory_stays_flat_over_repeated_calls(server_dsn_for_module: str, function: str) -> None:
    rng = np.random.default_rng(1)
    columns, norms = pq_parameters(rng, DIM // 4, 4, 256, 0.3)
    lo, inv = np.full(DIM, -1, np.float32), np.full(DIM, 120, np.float32)
    levels = array_text([np.zeros(DIM, np.float32), np.full(DIM, 0.1, np.float32)])
    params = {"columns": columns, "norms": norms, "lo": array_text([lo])[2:-2], "inv": array_text([inv])[2:-2],
              "levels": levels, "rows": array_text(rng.standard_normal((16, DIM)).astype(np.float32))}
    with psycopg.connect(server_dsn_for_module, autocommit=True) as conn:
        register_vector(conn)
        query = params["query"] = "[" + ",".join(["0.1"] * DIM) + "]"
        params["pq_table"] = conn.execute("SELECT pgembed_kernels.pq_lut(%s::vector, %s::vector[], %s::vector[], "
                                          "4, 'ip')", [query, columns, norms]).fetchone()[0]
        params["sq8_table"] = conn.execute("SELECT pgembed_kernels.sq8_query(%s::vector, %s::vector, %s::vector, "
                                           "'l2')", [query, params["lo"], array_text([1 / inv])[2:-2]]).fetchone()[0]
        params["bits_table"] = conn.execute("SELECT pgembed_kernels.bits_lut(%s::vector, %s, 'cosine')",
                                            [query, 2 * DIM]).fetchone()[0]
        conn.execute("CREATE TEMP TABLE vs (v vector(32))")
        with conn.cursor().copy("COPY vs (v) FROM STDIN") as copy:
            for v in rng.standard_normal((ROWS, DIM)).astype(np.float32):
                copy.write_row([v])
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        seen = []
        for _round in range(4):
            assert conn.execute(STATEMENTS[function], params).fetchone() == (True,)
            seen.append(backend_memory(conn, pid))
    grown = seen[-1][0] - seen[0][0]
    assert grown <= 64 * 1024, f"{function}: memory contexts grew by {grown} bytes over 60,000 calls: {seen}"
    # AddressSanitizer keeps freed blocks in quarantine, so a sanitized server's resident memory grows by design.
    if seen[0][1] is not None and not os.environ.get("PGEMBED_TEST_SANITIZE"):
        resident = seen[-1][1] - seen[0][1]  # type: ignore[operator]
        assert resident <= 2 * 1024 * 1024, f"{function}: resident memory grew by {resident} bytes: {seen}"
