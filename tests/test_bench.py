"""`pgembed bench`: its JSON is read by other tools, so its field names are part of the interface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pgembed.bench.codecs import exact_top
from pgembed.cli import _split_specs, main
from tests.helpers import unit_vectors


def test_codec_bench_writes_the_documented_json(dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    base, queries = unit_vectors(3000, 32, seed=1), unit_vectors(40, 32, seed=2)
    np.save(tmp_path / "base.npy", base.astype(np.float16))
    np.save(tmp_path / "queries.npy", queries)
    out = tmp_path / "out.json"
    code = main(["bench", "--dsn", dsn, "--base", str(tmp_path / "base.npy"), "--queries",
                 str(tmp_path / "queries.npy"), "--codecs", "f16,bq,sq8,rabitq", "--k", "5", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"]["n_base"] == 3000 and result["dataset"]["k"] == 5
    methods = {r["method"] for r in result["rows"]}
    assert methods == {"f16", "bq", "sq8", "rabitq"}
    for row in result["rows"]:
        assert {"method", "knobs", "recall_at_k", "bytes_per_vector", "encode_per_s", "sql_encode_per_s"} <= set(row)
        assert 0 <= row["recall_at_k"] <= 1 and row["bytes_per_vector"] > 0
    by = {(r["method"], r["knobs"]["rerank_factor"]): r for r in result["rows"]}
    assert by[("f16", 1)]["recall_at_k"] >= 0.99  # float16 loses almost nothing
    assert by[("bq", 40)]["recall_at_k"] > by[("bq", 1)]["recall_at_k"]  # re-ranking more finds more
    assert by[("bq", 1)]["bytes_per_vector"] < by[("sq8", 1)]["bytes_per_vector"] < by[("f16", 1)]["bytes_per_vector"]
    assert by[("rabitq", 1)]["error_bound_holds"] > 0.9


def test_exact_top_matches_a_full_sort() -> None:
    base, queries = unit_vectors(50_000, 8, seed=3), unit_vectors(5, 8, seed=4)
    ids, scores = exact_top(base, queries, 7)
    full = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :7]
    assert np.array_equal(ids, full) and np.allclose(scores, np.take_along_axis(queries @ base.T, full, 1))


def test_spec_list_splitting() -> None:
    assert _split_specs("f16,bq,pca128,bq2,mrl64+f32,leanvec32") == ["f16", "bq", "pca128,bq2", "mrl64+f32",
                                                                       "leanvec32"]
