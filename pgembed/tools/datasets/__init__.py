"""Vector datasets: read them from files, generate them, or build a real one from this machine's man pages.

`build_text_dataset` needs the `embed` extra (torch, sentence-transformers) and imports it only when called.
"""

from pgembed.tools.datasets.files import (
    Dataset,
    MissingDependencyError,
    load_dataset,
    load_dataset_dir,
    read_ids,
    read_vectors,
    write_bvecs,
    write_fvecs,
    write_ivecs,
)
from pgembed.tools.datasets.folder import write_dataset_dir
from pgembed.tools.datasets.synthetic import clustered
from pgembed.tools.datasets.text import build_text_dataset

__all__ = ["Dataset", "MissingDependencyError", "build_text_dataset", "clustered", "load_dataset", "load_dataset_dir",
           "read_ids", "read_vectors", "write_bvecs", "write_dataset_dir", "write_fvecs", "write_ivecs"]
