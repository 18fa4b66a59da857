"""The compiled runtime: a scikit-learn estimator converted to ONNX with
skl2onnx at registration, kept only when ONNX Runtime answers exactly as
scikit-learn does.

Validation runs both on a sample of VALIDATION_ROWS rows built from the
model itself (its split thresholds, scalers' statistics, or a spread of
scales when it has neither): every label must be identical and every
probability within PROBA_TOLERANCE. The float64 graph is tried first; a
float32 one (HistGradientBoosting has no float64 converter that ONNX
Runtime accepts) only if it passes the same test. Anything else (no
converter, a conversion error, one differing label) leaves the version on
scikit-learn with the reason recorded.
"""

import json
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import sklearn

logger = logging.getLogger("registry")

VALIDATION_ROWS = 2048
PROBA_TOLERANCE = 1e-5
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# Conversions are pure functions of the artifact's bytes (and the library
# versions): a process that registers the same file twice converts once.
_MEMO_SIZE = 8
_memo: dict[str, "Compiled | CompileRefused"] = {}


class CompileRefused(Exception):
    """The model stays on scikit-learn; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Compiled:
    payload: bytes  # the .onnx file
    input_dtype: str  # "float64" or "float32"
    detail: str  # what validation found, for /models and the admin


def onnx_compile(
    estimator, *, n_features: int | None, digest: str = "", sample=None
) -> Compiled:
    """Convert and validate; CompileRefused with the reason otherwise.
    `digest` (the artifact's sha256) memoizes the outcome in this process;
    `sample` adds rows of real data to the generated ones."""
    if digest and digest in _memo:
        outcome = _memo[digest]
        if isinstance(outcome, CompileRefused):
            raise outcome
        return outcome
    try:
        outcome = _compile(estimator, n_features, sample)
    except CompileRefused as refused:
        outcome = refused
    if digest:
        while len(_memo) >= _MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
        _memo[digest] = outcome
    if isinstance(outcome, CompileRefused):
        raise outcome
    return outcome


def _compile(estimator, n_features, sample) -> Compiled:
    if not n_features:
        raise CompileRefused("the model does not say how many features it takes")
    if not hasattr(estimator, "predict_proba"):
        raise CompileRefused("only classifiers with predict_proba are compiled")
    rows = validation_sample(estimator, n_features, sample)
    try:
        with sklearn.config_context(assume_finite=True), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected_labels = estimator.predict(rows)
            expected_proba = estimator.predict_proba(rows)
    except Exception as exc:  # the model's own code: anything
        raise CompileRefused(
            f"the model's own predict failed on the validation sample "
            f"({_first_line(exc)})"
        ) from None
    reasons = []
    for dtype in (np.float64, np.float32):
        try:
            payload = _convert(estimator, n_features, dtype)
            labels, proba = _run(payload, rows.astype(dtype))
        except CompileRefused:
            raise
        except Exception as exc:  # converters raise anything; keep one line
            reasons.append(f"{dtype.__name__}: {_first_line(exc)}")
            continue
        differing = int(np.sum(labels != expected_labels))
        gap = float(np.max(np.abs(proba - expected_proba))) if proba.size else 0.0
        if differing == 0 and gap <= PROBA_TOLERANCE:
            return Compiled(
                payload=payload,
                input_dtype=dtype.__name__,
                detail=(
                    f"validated on {len(rows):,} rows: labels identical, "
                    f"max |p - p_sklearn| {gap:.1e}, {dtype.__name__} input"
                ),
            )
        reasons.append(
            f"{dtype.__name__}: {differing:,} of {len(rows):,} labels differ, "
            f"max |p - p_sklearn| {gap:.1e}"
        )
    raise CompileRefused("; ".join(reasons))


def _convert(estimator, n_features: int, dtype) -> bytes:
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.exceptions import MissingShapeCalculator
    except ImportError as exc:  # pragma: no cover - a pinned requirement
        raise CompileRefused(f"skl2onnx is not installed ({exc})") from None
    options = {id(estimator): {"zipmap": False}}
    example = np.zeros((1, n_features), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = to_onnx(
                estimator, example, options=options, target_opset=TARGET_OPSET
            )
        except MissingShapeCalculator:
            raise CompileRefused(
                f"skl2onnx has no converter for {type(estimator).__name__}"
            ) from None
        except RuntimeError as exc:
            if "Unable to find a shape calculator" in str(exc):
                raise CompileRefused(
                    f"skl2onnx has no converter for {_model_types(estimator)}"
                ) from None
            raise
    classes = getattr(_final(estimator), "classes_", None)
    if classes is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "classes", json.dumps([_plain(c) for c in classes])
    return model.SerializeToString()


def _run(payload: bytes, rows: np.ndarray):
    from registry.runtimes.onnx import session_for

    session = session_for(payload, threads=1)
    label_name, proba_name = (o.name for o in session.get_outputs()[:2])
    labels, proba = session.run(
        [label_name, proba_name], {session.get_inputs()[0].name: rows}
    )
    return labels, proba


def validation_sample(estimator, n_features: int, sample=None) -> np.ndarray:
    """VALIDATION_ROWS rows (more with `sample`) that reach the model's
    decisions: half uniform over each feature's split-threshold range
    (widened 10 %), a quarter at the thresholds themselves (where float
    rounding would show), a quarter Gaussian at several scales."""
    rng = np.random.default_rng(0)
    low, high, thresholds = _feature_ranges(estimator, n_features)
    half, quarter = VALIDATION_ROWS // 2, VALIDATION_ROWS // 4
    span = high - low
    uniform = rng.uniform(low - 0.1 * span, high + 0.1 * span, (half, n_features))
    at_thresholds = rng.uniform(low, high, (quarter, n_features))
    for column, values in thresholds.items():
        at_thresholds[:, column] = rng.choice(values, quarter)
    scales = rng.choice([0.1, 1.0, 3.0, 10.0], (VALIDATION_ROWS - half - quarter, 1))
    center = (low + high) / 2
    gaussian = center + rng.normal(size=(len(scales), n_features)) * scales
    parts = [uniform, at_thresholds, gaussian]
    if sample is not None:
        parts.append(np.asarray(sample, dtype=np.float64).reshape(-1, n_features))
    return np.vstack(parts)


def _feature_ranges(estimator, n_features: int):
    """Per-feature (low, high) and the split thresholds per feature, read
    from the fitted trees; (-3, 3) and none when the model has no trees."""
    thresholds: dict[int, list] = {}
    for tree in _trees(estimator):
        internal = tree.feature >= 0
        for column, value in zip(
            tree.feature[internal], tree.threshold[internal], strict=True
        ):
            thresholds.setdefault(int(column), []).append(float(value))
    bins = getattr(_final(estimator), "_bin_mapper", None)
    for column, values in enumerate(getattr(bins, "bin_thresholds_", None) or []):
        if len(values):
            thresholds.setdefault(column, []).extend(float(v) for v in values)
    low = np.full(n_features, -3.0)
    high = np.full(n_features, 3.0)
    for column, values in thresholds.items():
        if column < n_features and values:
            low[column], high[column] = min(values), max(values)
            if high[column] <= low[column]:
                low[column], high[column] = low[column] - 1, high[column] + 1
    scaler_mean = getattr(_first(estimator), "mean_", None)
    scaler_scale = getattr(_first(estimator), "scale_", None)
    if not thresholds and scaler_mean is not None and scaler_scale is not None:
        low, high = scaler_mean - 3 * scaler_scale, scaler_mean + 3 * scaler_scale
    return low, high, {k: np.asarray(v) for k, v in thresholds.items() if v}


def _trees(estimator):
    final = _final(estimator)
    members = getattr(final, "estimators_", None)
    if members is None:
        members = [final]
    for member in np.ravel(np.asarray(members, dtype=object)):
        tree = getattr(member, "tree_", None)
        if tree is not None:
            yield tree


def _final(estimator):
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _first(estimator):
    steps = getattr(estimator, "steps", None)
    return steps[0][1] if steps else estimator


def _model_types(estimator) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return " > ".join(type(step).__name__ for _, step in steps)
    return type(estimator).__name__


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
