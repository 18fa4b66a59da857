"""scikit-learn estimators stored with joblib (or plain pickle)."""

import io

import joblib
import numpy as np
import sklearn

from registry.errors import ArtifactLoadError
from registry.runtimes.base import ModelRuntime, Signature

# Estimators whose predict() is exactly classes_[argmax(predict_proba())];
# for them one predict_proba call gives both answers. Others (SVC with
# probability=True, for one) may disagree and get two calls.
_ARGMAX_CONSISTENT = {
    "LogisticRegression",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "KNeighborsClassifier",
    "GaussianNB",
    "MultinomialNB",
    "BernoulliNB",
    "ComplementNB",
    "MLPClassifier",
    "DummyClassifier",
}


def _final_estimator(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


class SklearnRuntime(ModelRuntime):
    name = "sklearn"

    def load(self) -> None:
        try:
            self._model = joblib.load(io.BytesIO(self._payload))
        except (ImportError, AttributeError) as exc:
            raise ArtifactLoadError(
                f"The artifact needs code this server lacks: {exc}."
            ) from None
        except Exception as exc:  # unpickling can raise nearly anything
            raise ArtifactLoadError(
                "The artifact is not a loadable joblib/pickle file "
                f"({type(exc).__name__}: {exc})."
            ) from None
        if not hasattr(self._model, "predict"):
            raise ArtifactLoadError(
                f"The artifact holds a {type(self._model).__name__}, "
                "which has no predict()."
            )
        final = _final_estimator(self._model)
        self._has_proba = hasattr(self._model, "predict_proba")
        self._classes = getattr(final, "classes_", None)
        self._one_pass = (
            self._has_proba
            and self._classes is not None
            and type(final).__name__ in _ARGMAX_CONSISTENT
        )
        self._payload = b""  # the model object is all we keep
        self.ready = True

    @property
    def estimator(self):
        """The unpickled model object (for conversion at registration)."""
        return self._model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        # Inputs are checked finite by the codec; skip sklearn's re-check.
        with sklearn.config_context(assume_finite=True):
            return self._model.predict(batch)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray | None:
        if not self._has_proba:
            return None
        with sklearn.config_context(assume_finite=True):
            return self._model.predict_proba(batch)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with sklearn.config_context(assume_finite=True):
            if self._one_pass:
                proba = self._model.predict_proba(batch)
                return self._classes.take(proba.argmax(axis=1)), proba
            labels = self._model.predict(batch)
            proba = self._model.predict_proba(batch) if self._has_proba else None
            return labels, proba

    def signature(self) -> Signature:
        model = self._model
        final = _final_estimator(model)
        n_features = getattr(model, "n_features_in_", None)
        if n_features is None:
            n_features = getattr(final, "n_features_in_", None)
        names = getattr(model, "feature_names_in_", None)
        classes = getattr(final, "classes_", None)
        return Signature(
            model_type=type(model).__name__,
            n_features=int(n_features) if n_features is not None else None,
            feature_names=[str(n) for n in names] if names is not None else [],
            classes=[_plain(c) for c in classes] if classes is not None else [],
        )

    def unload(self) -> None:
        self._model = None
        super().unload()


def _plain(value):
    """numpy scalars to JSON-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value
