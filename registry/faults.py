"""Estimators that misbehave on purpose: a slow one and one that raises.

They wrap a fitted scikit-learn classifier and are pickled like any other
artifact, so a server process loads them through the normal registry path.
Guardrail tests register a FailingClassifier as an experiment arm; the
shadow benchmark registers a SlowClassifier as a shadow version.
"""

import time

import numpy as np


class SlowClassifier:
    """The wrapped classifier's answers; predict_proba first sleeps
    `seconds` (a sleep holds no CPU and no GIL: like a model that waits on
    I/O). The sklearn runtime calls predict and predict_proba once each."""

    def __init__(self, estimator, seconds: float):
        self.estimator = estimator
        self.seconds = seconds
        self.classes_ = estimator.classes_
        self.n_features_in_ = estimator.n_features_in_

    def predict_proba(self, X) -> np.ndarray:
        time.sleep(self.seconds)
        return self.estimator.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.estimator.predict(X)


class FailingClassifier:
    """Loads and describes itself like the wrapped classifier, and raises
    on every prediction."""

    def __init__(self, estimator):
        self.classes_ = estimator.classes_
        self.n_features_in_ = estimator.n_features_in_

    def predict_proba(self, X) -> np.ndarray:
        raise RuntimeError("FailingClassifier always fails")

    def predict(self, X) -> np.ndarray:
        raise RuntimeError("FailingClassifier always fails")
