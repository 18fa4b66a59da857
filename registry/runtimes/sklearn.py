"""scikit-learn estimators, served from skops files.

Serving never unpickles: a pickle runs whatever code it carries. The one
way in for a joblib/pickle file is `unpickle_from_disk`, called only by
the registration of a file already on the server's own disk (the
`register_model`, `sync_artifacts`, `bootstrap_demo` and `compile_versions`
commands), which writes the model once more as skops; every process loads
that."""

import io
import warnings

import joblib
import numpy as np
import sklearn
import skops.io
from sklearn.exceptions import InconsistentVersionWarning

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

    @classmethod
    def from_estimator(cls, estimator) -> "SklearnRuntime":
        """A runtime around an estimator already in memory (registration)."""
        runtime = cls(b"")
        runtime._adopt(estimator)
        return runtime

    def load(self) -> None:
        if not self._payload.startswith(b"PK\x03\x04"):
            raise ArtifactLoadError(
                "The file is not a skops file; scikit-learn versions serve "
                "only from skops (a version registered from a pickle before "
                "the skops form existed: run manage.py compile_versions)."
            )
        try:
            model = skops.io.loads(self._payload, trusted=self._trusted)
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            raise ArtifactLoadError(
                f"The skops file needs types that were not accepted at "
                f"registration: {exc}."
            ) from None
        except Exception as exc:  # a damaged file raises nearly anything
            raise ArtifactLoadError(
                "The artifact is not a loadable skops file "
                f"({type(exc).__name__}: {str(exc)[:200]})."
            ) from None
        self._adopt(model)

    def _adopt(self, model) -> None:
        self._model = model
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
            sklearn_version=sklearn.__version__,
        )

    def unload(self) -> None:
        self._model = None
        super().unload()


_unpickling = {"allowed": True}


def unpickling_forbid() -> None:
    """From now on this process refuses to unpickle anything: server
    processes (web, websockets, Celery) call it at start-up, so no code
    path, present or future, can make them run a pickle."""
    _unpickling["allowed"] = False


def unpickle_from_disk(data: bytes) -> tuple[object, str | None]:
    """The object in joblib/pickle bytes, and the scikit-learn version it
    was pickled with when scikit-learn says it differs from ours.

    Unpickling runs code from the file: only for files from the server's
    own disk, in the command that registers them (ALLOW_PICKLE), never for
    bytes that came over HTTP. ArtifactLoadError when it is not loadable,
    or in a server process (unpickling_forbid())."""
    if not _unpickling["allowed"]:
        raise ArtifactLoadError(
            "This server process never unpickles: register joblib/pickle "
            "files with manage.py register_model (or sync_artifacts)."
        )
    original = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            model = joblib.load(io.BytesIO(data))
    except (ImportError, AttributeError) as exc:
        raise ArtifactLoadError(
            f"The artifact needs code this server lacks: {exc}."
        ) from None
    except Exception as exc:  # unpickling can raise nearly anything
        raise ArtifactLoadError(
            "The artifact is not a loadable joblib/pickle file "
            f"({type(exc).__name__}: {exc})."
        ) from None
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            original = warning.message.original_sklearn_version
    return model, original


def _plain(value):
    """numpy scalars to JSON-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value
