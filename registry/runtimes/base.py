"""The runtime interface, after MLServer's MLModel and KServe's Model."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Signature:
    """What a loaded model says about itself."""

    model_type: str
    n_features: int | None
    feature_names: list[str] = field(default_factory=list)
    classes: list = field(default_factory=list)
    # The tensor type the model takes (a V2 datatype) and the
    # scikit-learn version the file was written with, when known.
    input_dtype: str = "FP64"
    sklearn_version: str | None = None


class ModelRuntime(ABC):
    """Loads one artifact and answers predictions for row batches.

    The payload is the artifact's bytes, already checked against the
    registered sha256 by the caller; a runtime never opens files itself.
    """

    name: str = ""

    def __init__(self, payload: bytes, *, trusted: tuple = ()):
        self._payload = payload
        # Types outside the format's defaults that loading may build
        # (skops), as accepted at registration.
        self._trusted = list(trusted)
        self.ready = False

    @abstractmethod
    def load(self) -> None:
        """Build the model from the payload; sets `ready`."""

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """One label per row of a 2-D float64 array."""

    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray | None:
        """Class probabilities per row, or None if the model has none."""

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities together; backends may do it in one
        pass."""
        return self.predict(batch), self.predict_proba(batch)

    @abstractmethod
    def signature(self) -> Signature:
        """Type, feature count and names, and classes of the loaded model."""

    def unload(self) -> None:
        self.ready = False
