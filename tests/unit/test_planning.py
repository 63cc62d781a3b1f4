"""The pure planning layer and the vocabulary: no server."""

from __future__ import annotations

import pytest

from pgembed.errors import InvalidInputError
from pgembed.planning.costs import CostModel
from pgembed.planning.params import SearchParams
from pgembed.planning.plans import Plan
from pgembed.vocabulary import IterativeScan, Metric, PlanKind, Storage


def test_search_params_check_types_and_merge_knobs() -> None:
    p = SearchParams.of(SearchParams(recall=0.9), oversample=4)
    assert p == SearchParams(recall=0.9, oversample=4) and p.plan is PlanKind.AUTO
    assert SearchParams.from_dict(p.to_dict()) == p
    assert SearchParams(plan="index").plan is PlanKind.INDEX and SearchParams(plan="index").per_query_only
    assert not SearchParams(oversample=3, ef_search=80).per_query_only
    for bad, message in (({"recall": "high"}, "recall must be a number"), ({"ef_search": 2.5}, "ef_search must be"),
                         ({"ef_search": True}, "ef_search must be"), ({"plan": "fast"}, "plan must be one of"),
                         ({"codec": 3}, "codec must be")):
        with pytest.raises(InvalidInputError, match=message):
            SearchParams(**bad)
    with pytest.raises(InvalidInputError, match="unknown search knob"):
        SearchParams.of(None, efsearch=40)


def test_metric_names_pgvectors_operators_and_classes() -> None:
    assert [m.operator for m in Metric] == ["<=>", "<#>", "<->"]
    assert Metric.COSINE.opclass(Storage.HALFVEC) == "halfvec_cosine_ops"
    assert Metric.L2.opclass(Storage.VECTOR) == "vector_l2_ops"
    assert Metric.IP.opclass(Storage.BIT) == "bit_hamming_ops"
    assert Storage.of("bit(768)") is Storage.BIT
    with pytest.raises(ValueError, match="no operator class"):
        Metric.COSINE.opclass(Storage.BYTEA)


def test_plans_read_what_the_server_writes() -> None:
    plan = Plan.from_json({"kind": "index", "reason": "r", "k": 10, "codec": "bq", "candidates": 100,
                           "ef_search": 100, "oversample": 10, "iterative_scan": "relaxed_order",
                           "estimated_rows": 740, "total_rows": 5000, "tuned": False, "fallback": False})
    assert plan.kind is PlanKind.INDEX and plan.iterative_scan is IterativeScan.RELAXED_ORDER
    assert isinstance(plan.estimated_rows, float) and isinstance(plan.oversample, float)
    fallback = plan.exact_fallback(3)
    assert fallback.kind is PlanKind.EXACT and fallback.fallback and fallback.candidates is None
    assert "found 3 < k rows" in fallback.reason and fallback.describe()["kind"] == "exact"


def test_the_cost_model_prices_scans_and_plans() -> None:
    cost = CostModel()
    assert cost.scan_seconds(20_000, 10, 384) < cost.scan_seconds(20_000, 100, 384)
    assert cost.each_seconds(10) == pytest.approx(10 * cost.per_query)
    assert cost.query_seconds(PlanKind.EXACT, 1000, 0.1) == pytest.approx(cost.exact_base + 1000 * cost.exact_row)
    assert cost.query_seconds(PlanKind.INDEX, 0, 0.25) == pytest.approx(cost.index_query * 2)


def test_search_params_pickled_in_one_process_hash_as_made_in_another() -> None:
    """The knobs' hash is kept once made; a pickle carries the fields, and the hash is the unpickler's."""
    import os
    import subprocess
    import sys

    make = "from pgembed.planning.params import SearchParams; p = SearchParams(codec='bq2', refine='sq8', plan='index')"
    dump = f"{make}; import pickle, sys; sys.stdout.buffer.write(pickle.dumps(p))"
    dumped = subprocess.run([sys.executable, "-c", dump], capture_output=True, check=True,
                            env={**os.environ, "PYTHONHASHSEED": "1"}).stdout
    check = (f"{make}; import pickle, sys; q = pickle.loads(sys.stdin.buffer.read()); "
             "print(q == p, hash(q) == hash(p), len({p: 1, q: 2}))")
    out = subprocess.run([sys.executable, "-c", check], input=dumped, capture_output=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "2"}).stdout.decode().split()
    assert out == ["True", "True", "1"]
