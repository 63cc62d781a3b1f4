"""Generated unit vectors with the structure real embeddings have: clusters in a low-dimensional subspace.

Uniform random vectors are the worst case for every codec and index (no structure to exploit, all distances
alike); real embeddings concentrate near a subspace of far fewer dimensions than they have, in clusters.
`clustered` reproduces that with two knobs one can turn independently: the intrinsic dimension and the noise.
Its output says it is synthetic, so no figure measured on it passes for one measured on real data.
"""

from __future__ import annotations

import numpy as np

from pgembed.errors import InvalidInputError
from pgembed.groundtruth import exact_topk
from pgembed.tools.datasets.files import Dataset

# Spread of the points around their cluster centre, relative to the centre's unit norm, in the subspace.
_CLUSTER_SPREAD = 0.6
_CHUNK = 65_536


def clustered_with_labels(n: int, dim: int, *, queries: int = 100, intrinsic_dim: int = 32, clusters: int = 64,
                          noise: float = 0.05, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    """`clustered`, plus the cluster of each base row (an attribute to filter on)."""
    if n < 1 or queries < 1:
        raise InvalidInputError(f"need at least one base row and one query, got n={n}, queries={queries}")
    if not 1 <= intrinsic_dim <= dim:
        raise InvalidInputError(f"intrinsic_dim must be in 1..dim ({dim}), got {intrinsic_dim}")
    if clusters < 1 or noise < 0:
        raise InvalidInputError(f"need clusters >= 1 and noise >= 0, got clusters={clusters}, noise={noise}")
    rng = np.random.default_rng(seed)
    # An orthonormal basis of a random intrinsic_dim-dimensional subspace of R^dim.
    basis, _ = np.linalg.qr(rng.standard_normal((dim, intrinsic_dim)))
    basis = basis.astype(np.float32)
    centres = rng.standard_normal((clusters, intrinsic_dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Unequal cluster sizes, as real corpora have (a few big topics, many small ones).
    weights = rng.dirichlet(np.full(clusters, 2.0))
    total = n + queries
    labels = rng.choice(clusters, size=total, p=weights).astype(np.int32)
    out = np.empty((total, dim), dtype=np.float32)
    for start in range(0, total, _CHUNK):
        lab = labels[start:start + _CHUNK]
        z = centres[lab] + _CLUSTER_SPREAD / np.sqrt(intrinsic_dim) * rng.standard_normal(
            (len(lab), intrinsic_dim), dtype=np.float32)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        # Isotropic noise of norm ~`noise` around the unit-norm point in the subspace.
        x = z @ basis.T + noise / np.sqrt(dim) * rng.standard_normal((len(lab), dim), dtype=np.float32)
        out[start:start + len(lab)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    # Queries are separate draws from the same mixture: never rows of the base.
    base, qs = out[:n], out[n:]
    gt, _ = exact_topk(base, qs, min(100, n), "ip")
    params = {"n": n, "dim": dim, "queries": queries, "intrinsic_dim": intrinsic_dim, "clusters": clusters,
              "noise": noise, "seed": seed}
    ds = Dataset(name=f"synthetic-clustered-{n}x{dim}-i{intrinsic_dim}", base=base, queries=qs, gt=gt, metric="ip",
                 source={"synthetic": True, "generator": "pgembed.tools.datasets.synthetic.clustered", "params": params,
                         "notes": ["SYNTHETIC data: a mixture of clusters in a random subspace, not real embeddings"]})
    return ds, labels[:n]


def clustered(n: int, dim: int, *, queries: int = 100, intrinsic_dim: int = 32, clusters: int = 64,
              noise: float = 0.05, seed: int = 0) -> Dataset:
    """Unit vectors from `clusters` clusters living in a random `intrinsic_dim`-dimensional subspace of R^dim.

    Each point is a cluster centre plus spread, normalised within the subspace, plus isotropic noise of norm
    about `noise`, normalised again: with small noise nearly all variance lies in `intrinsic_dim` directions.
    Queries come from the same distribution (separate draws); `gt` is the exact top-100 by inner product.
    """
    return clustered_with_labels(n, dim, queries=queries, intrinsic_dim=intrinsic_dim, clusters=clusters,
                                 noise=noise, seed=seed)[0]
