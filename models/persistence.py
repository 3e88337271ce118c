"""Save and load the fitted sleepiness model with a JSON metadata sidecar.

``save`` writes ``<path>`` (joblib pickle of the calibrated estimator) and ``<path>.json`` with: model version,
feature list, library versions (scikit-learn, numpy, scipy, joblib), the SHA-256 of the training data and of the
pickle.  ``load`` refuses — raising `ModelMismatchError` naming what differs — when a library version or the
expected feature list does not match, or when the pickle's SHA-256 differs from the sidecar, *before* unpickling.
Pickles execute code when loaded: only load files written by this service (the hash check detects corruption and
accidental substitution, not a deliberate attacker who can rewrite both files).

Reference: scikit-learn user guide §11 "Model persistence" (version pinning, security of pickles).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn

from models.sleepiness import SleepinessModel

SIDECAR_SUFFIX = ".json"


class ModelMismatchError(ValueError):
    """The stored model does not match this environment or the caller's expectations."""


def library_versions() -> dict[str, str]:
    """Versions that must match exactly between save and load."""
    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "joblib": joblib.__version__}


def training_data_sha256(frame: pd.DataFrame, y: Any, groups: Any) -> str:
    """SHA-256 of the training data: CSV of the frame (``%.17g`` floats, so round-trip exact) plus y and groups."""
    digest = hashlib.sha256()
    digest.update(frame.to_csv(index=False, float_format="%.17g").encode())
    digest.update(np.asarray(y).astype(str).tobytes())
    digest.update(np.asarray(groups).astype(str).tobytes())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    """``model.joblib`` -> ``model.joblib.json``."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def save(model: SleepinessModel, path: str | Path, *, training_sha256: str) -> Path:
    """Write the estimator to ``path`` and its metadata to ``path + '.json'``; returns the sidecar path."""
    target = Path(path)
    joblib.dump(model.estimator, target)
    meta = {"model_version": model.model_version, "features": list(model.features),
            "libraries": library_versions(), "training_data_sha256": training_sha256,
            "model_sha256": _file_sha256(target)}
    side = sidecar_path(target)
    side.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return side


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The sidecar of a saved model."""
    meta: dict[str, Any] = json.loads(sidecar_path(Path(path)).read_text(encoding="utf-8"))
    return meta


def _check(meta: dict[str, Any], path: Path, features: tuple[str, ...] | None, model_version: str | None) -> None:
    for lib, version in library_versions().items():
        stored = meta.get("libraries", {}).get(lib)
        if stored != version:
            raise ModelMismatchError(f"{lib} version mismatch: model saved with {stored}, running {version}")
    if features is not None and tuple(meta.get("features", ())) != tuple(features):
        raise ModelMismatchError(f"feature list mismatch: model has {meta.get('features')}, "
                                 f"caller expects {list(features)}")
    if model_version is not None and meta.get("model_version") != model_version:
        raise ModelMismatchError(f"model version mismatch: stored {meta.get('model_version')}, "
                                 f"expected {model_version}")
    if meta.get("model_sha256") != _file_sha256(path):
        raise ModelMismatchError(f"model file SHA-256 does not match its sidecar: {path}")


def load(path: str | Path, *, features: tuple[str, ...] | None = None,
         model_version: str | None = None) -> SleepinessModel:
    """Load a model saved by `save`, refusing on any library-version, feature-list or file-hash mismatch."""
    target = Path(path)
    meta = read_metadata(target)
    _check(meta, target, features, model_version)
    estimator = joblib.load(target)
    return SleepinessModel(estimator, tuple(meta["features"]), str(meta["model_version"]))
