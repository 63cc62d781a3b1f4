"""Files a compression bench leaves behind: every row as CSV, and two PNG plots (matplotlib, no screen)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pgembed.tools.bench.advisor import eligible, pareto_frontier

CSV_COLUMNS = ("method", "kind", "knobs", "plan", "k", "bytes_per_vector", "index_bytes_per_vector",
               "total_bytes_per_vector", "recall_at_1", "recall_at_10", "recall_at_100", "qps", "batch_qps",
               "p50_ms", "p99_ms", "build_s", "fit_s", "encode_per_s", "sql_encode_per_s", "index_bytes")


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "knobs": json.dumps(r.get("knobs", {}), sort_keys=True)})
    return path


def _by_method(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("recall_at_10") is not None:
            grouped.setdefault(str(r["method"]), []).append(r)
    return grouped


def _style(kind: str) -> dict[str, Any]:
    return {"baseline": {"linestyle": "--", "marker": "s"}, "client-scan": {"linestyle": ":", "marker": "^"}}.get(
        kind, {"linestyle": "-", "marker": "o"})


def plot_recall_qps(result: Mapping[str, Any], path: Path) -> Path:
    """recall@10 against queries per second (single client), one curve per configuration over its knobs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    cmap = plt.get_cmap("tab20")
    for i, (method, rows) in enumerate(sorted(_by_method(result["rows"]).items())):
        rows = sorted(rows, key=lambda r: r["recall_at_10"])
        ax.plot([r["recall_at_10"] for r in rows], [r["qps"] for r in rows], label=method, color=cmap(i % 20),
                markersize=4, linewidth=1.2, **_style(str(rows[0]["kind"])))
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (single client, log)")
    ax.axvline(0.95, color="grey", linewidth=0.8, linestyle=":")
    ax.set_title(_title(result, "recall@10 vs queries per second"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_recall_bytes(result: Mapping[str, Any], path: Path) -> Path:
    """Best recall@10 per configuration against its bytes per vector on disk, and the frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    for method, rows in sorted(_by_method(result["rows"]).items()):
        best = max(rows, key=lambda r: r["recall_at_10"])
        kind = str(best["kind"])
        ax.scatter(best["bytes_per_vector"], best["recall_at_10"], marker=_style(kind)["marker"],
                   color={"baseline": "tab:red", "client-scan": "tab:orange"}.get(kind, "tab:blue"), zorder=3)
        ax.annotate(method, (best["bytes_per_vector"], best["recall_at_10"]), fontsize=7,
                    xytext=(4, -3), textcoords="offset points")
    frontiers: list[tuple[bool, dict[str, Any], str]] = [
        (False, {"color": "tab:green"}, "frontier: searchable in PostgreSQL"),
        (True, {"color": "tab:orange", "linestyle": ":"}, "frontier with client-side scans (sq8, pq)")]
    for client_scan, style, label in frontiers:
        xs, ys = _frontier_steps(eligible(result["rows"], include_client_scan=client_scan))
        if xs:
            ax.step(xs, ys, where="post", linewidth=1, label=label, **style)
    for kind, colour in (("index", "tab:blue"), ("client-scan", "tab:orange"), ("baseline", "tab:red")):
        ax.scatter([], [], marker=_style(kind)["marker"], color=colour, label=f"{kind} (best setting)")
    for budget in (16, 32, 64, 128, 256):
        ax.axvline(budget, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector on disk (code columns; baselines: the indexed value)")
    ax.set_ylabel("best recall@10 over the knob sweep")
    ax.set_title(_title(result, "recall@10 vs bytes per vector"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _frontier_steps(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """The best recall@10 reachable at <= each size, over the rows Pareto-optimal by recall@10."""
    by_10 = [{**r, "recall_at_k": r["recall_at_10"]} for r in rows if r.get("recall_at_10") is not None]
    best_at: dict[float, float] = {}
    for r in pareto_frontier(by_10):
        size = float(r["bytes_per_vector"])
        best_at[size] = max(best_at.get(size, 0.0), float(r["recall_at_10"]))
    xs, ys, running = [], [], 0.0
    for x in sorted(best_at):
        running = max(running, best_at[x])
        xs.append(x)
        ys.append(running)
    return xs, ys


def _title(result: Mapping[str, Any], what: str) -> str:
    d = result["dataset"]
    return f"{what}: {d['name']} ({d['n_base']:,} x {d['dim']}, {d['n_queries']} queries)"


def write_outputs(result: dict[str, Any], out_dir: str | Path, stem: str = "compression") -> dict[str, str]:
    """JSON, CSV and both plots into out_dir; returns their paths (also stored in result["files"])."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": str(write_csv(result["rows"], out / f"{stem}.csv")),
        "recall_qps_png": str(plot_recall_qps(result, out / f"{stem}-recall-qps.png")),
        "recall_bytes_png": str(plot_recall_bytes(result, out / f"{stem}-recall-bytes.png")),
    }
    result["files"] = {**files, "json": str(out / f"{stem}.json")}
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str))
    return result["files"]
