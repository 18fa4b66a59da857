"""Demo models: two versions of a 10-feature classifier (the seed's example
request has 10 features), trained here on generated data, written in the
seed's artifact convention and registered."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from registry import artifacts, services
from registry.models import RegisteredModel

N_FEATURES = 10
DEMO_VERSIONS = {
    "v1.0": lambda seed: LogisticRegression(max_iter=1000),
    "v2.0": lambda seed: RandomForestClassifier(
        n_estimators=100, max_depth=10, random_state=seed
    ),
}


DEMO_FEATURE_NAMES = [f"x{i}" for i in range(N_FEATURES)]


def demo_dataset(*, seed: int = 42):
    """Train/test split of a generated binary classification problem."""
    X, y = make_classification(
        n_samples=6000,
        n_features=N_FEATURES,
        n_informative=6,
        n_redundant=2,
        class_sep=0.8,
        random_state=seed,
    )
    return train_test_split(X, y, test_size=0.25, random_state=seed)


def demo_artifacts_write(
    *, seed: int = 42, log: Callable[[str], None] = lambda _: None
) -> list[str]:
    """Train every demo version and write artifacts/model_<v>.pkl with its
    metadata JSON; existing files are left alone. The versions written."""
    root = artifacts.artifacts_root()
    X_train, X_test, y_train, y_test = demo_dataset(seed=seed)
    written = []
    for version, build in DEMO_VERSIONS.items():
        path = root / f"model_{version}.pkl"
        if path.exists():
            log(f"{path.name} exists; kept")
            continue
        estimator = build(seed)
        log(f"training {version}: {type(estimator).__name__} ...")
        estimator.fit(X_train, y_train)
        accuracy = float(estimator.score(X_test, y_test))
        joblib.dump(estimator, path)
        metadata = {
            "version": version,
            "name": f"Model {version}",
            "accuracy": round(accuracy, 4),
            "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "model_type": type(estimator).__name__,
            "n_features": N_FEATURES,
            # /predict also takes rows keyed by these names
            "feature_names": DEMO_FEATURE_NAMES,
            "training": {
                "data": f"sklearn make_classification, 6000 rows, seed {seed}",
                "test_size": 0.25,
            },
        }
        (root / f"model_{version}.json").write_text(
            json.dumps(metadata, indent=2) + "\n"
        )
        log(f"  held-out accuracy {accuracy:.4f} -> {path.name}")
        written.append(version)
    return written


def demo_bootstrap(
    *, seed: int = 42, log: Callable[[str], None] = lambda _: None
) -> services.SyncReport | None:
    """Train, write and register the demo versions and activate v1.0 (via
    DEFAULT_MODEL_VERSION). None when the registry already has models."""
    if RegisteredModel.objects.exists():
        log("the registry already has models; nothing to do")
        return None
    demo_artifacts_write(seed=seed, log=log)
    report = services.artifacts_sync()
    for label in report.registered:
        log(f"registered {label}")
    if report.activated:
        log(f"activated {report.activated}")
    for failure in report.failed:
        log(f"FAILED {failure}")
    return report
