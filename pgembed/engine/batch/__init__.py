"""Batched search: a workload of hybrid queries planned together (run.py), the scan-and-multiply kernels
(scan.py), the connections it works on (workers.py), and the cost model's constants measured (calibrate.py)."""

from pgembed.engine.batch.calibrate import calibrate
from pgembed.engine.batch.run import BatchResult, GroupPlan, iter_search_batch, search_batch

__all__ = ["BatchResult", "GroupPlan", "calibrate", "iter_search_batch", "search_batch"]
