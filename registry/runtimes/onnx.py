"""ONNX files served by ONNX Runtime: the compiled form of a scikit-learn
version (registry/compile.py)."""

import json

import numpy as np

from registry.errors import ArtifactLoadError
from registry.runtimes.base import ModelRuntime, Signature

_DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32}


def session_for(payload: bytes, *, threads: int):
    """An InferenceSession tuned for one-row calls from one thread at a
    time: `threads` intra-op threads, no inter-op pool, no spinning (a
    spinning pool burns the core the event loop needs between calls)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


class OnnxRuntime(ModelRuntime):
    name = "onnx"

    def load(self) -> None:
        from mlserving.conf import app_settings

        try:
            self._session = session_for(
                self._payload, threads=app_settings.ONNX_THREADS
            )
        except Exception as exc:  # onnxruntime raises its own Fail types
            raise ArtifactLoadError(
                f"The ONNX file cannot be loaded ({type(exc).__name__}: "
                f"{str(exc)[:200]})."
            ) from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self._input = inputs[0].name
        self._dtype = _DTYPES.get(inputs[0].type, np.float32)
        shape = inputs[0].shape
        self._n_features = (
            shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        )
        self._label = outputs[0].name
        self._proba = outputs[1].name if len(outputs) > 1 else None
        self._names = [self._label] + ([self._proba] if self._proba else [])
        meta = self._session.get_modelmeta().custom_metadata_map
        self._classes = json.loads(meta["classes"]) if "classes" in meta else []
        self._payload = b""
        self.ready = True

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        rows = batch if batch.dtype == self._dtype else batch.astype(self._dtype)
        found = self._session.run(self._names, {self._input: rows})
        proba = found[1] if len(found) > 1 else None
        if proba is not None and proba.dtype != np.float64:
            proba = proba.astype(np.float64)
        return found[0], proba

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.infer(batch)[0]

    def predict_proba(self, batch: np.ndarray) -> np.ndarray | None:
        return self.infer(batch)[1]

    def signature(self) -> Signature:
        return Signature(
            model_type="onnx",
            n_features=self._n_features,
            classes=list(self._classes),
            input_dtype="FP64" if self._dtype == np.float64 else "FP32",
            sklearn_version=None,
        )

    def unload(self) -> None:
        self._session = None
        super().unload()
