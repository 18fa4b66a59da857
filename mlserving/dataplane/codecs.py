"""Decoding /predict bodies and encoding their answers (orjson + numpy).

The request shape is the seed's:
    {"features": [0.1, ...], "model_version": "v1.0"?, "use_ab_testing": true?}
`features` may also be a list of rows for a batch, or rows as objects
keyed by feature name (any order); `model` names a registered model
other than the default, or one of its aliases (`model@alias`).
"""

import random
import re
import time
from dataclasses import dataclass

import numpy as np
import orjson

from mlserving.errors import BadRequest, MalformedJSON, ValidationFailed
from registry.errors import FeatureNamesMismatch, InvalidFeatures, TooManyRows

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_NUMBER_TYPES = (int, float)
_JSON_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    type(None): "null",
    dict: "an object",
    list: "a list",
}


@dataclass(slots=True)
class PredictRequest:
    # None while rows keyed by feature name (`named`) wait for the target
    # version's feature order (named_rows()).
    rows: np.ndarray | None
    single: bool
    model: str | None
    model_version: str | None
    use_ab_testing: bool
    # Who the request is about (`user_id` in the body): logged with the
    # event; experiments assign arms by it.
    subject_key: str = ""
    # The decoded body, for an experiment whose subject field has another
    # name.
    body: dict | None = None
    # Rows as objects keyed by feature name, in the order sent.
    named: list | None = None


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a new one: 32 hex
    digits, the first 12 the time in milliseconds and the rest random, so
    ids sort by time and the event table's request_id index grows at its
    end instead of at random places."""
    if header and _REQUEST_ID.match(header):
        return header
    # Unique, not secret: random's generator costs a tenth of os.urandom.
    return f"{int(time.time() * 1000):012x}{random.getrandbits(80):020x}"


def _kind(value) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _parse(body: bytes):
    if not body:
        raise BadRequest(
            'The request body is empty; send a JSON object with "features".',
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        near = body[exc.pos : exc.pos + 9].lstrip(b"-")
        if near.startswith((b"NaN", b"Infinity")) or "infinity" in exc.msg:
            raise InvalidFeatures(
                "Features must be finite numbers: NaN and Infinity are not "
                "allowed (and are not valid JSON).",
                details={"reason": "non_finite", "position": exc.pos},
            ) from None
        raise MalformedJSON(
            f"The body is not valid JSON: {exc.msg} at position {exc.pos}."
            + _comment_hint(body, exc.pos),
            details={"position": exc.pos},
        ) from None


def _comment_hint(body: bytes, pos: int) -> str:
    """A hint when the error sits at a comment, as in the seed's examples
    (`"model_version": "v1.0",  // optional`)."""
    if body[pos : pos + 2] in (b"//", b"/*") or body.lstrip()[:2] == b"//":
        return " JSON has no comments: remove the // or /* */ parts."
    return ""


def _check_row(row: list, index: int | None) -> None:
    for j, value in enumerate(row):
        kind = type(value)
        if kind is float or kind is int:
            continue
        where = f"features[{j}]" if index is None else f"features[{index}][{j}]"
        raise InvalidFeatures(
            f"{where} is {_kind(value)}; every feature must be a number.",
            details={
                "reason": "not_a_number",
                "index": [j] if index is None else [index, j],
                "type": _kind(value),
            },
        )


def _named(features, max_rows: int) -> tuple[list | None, bool]:
    """Rows keyed by feature name: one object, or a list of objects."""
    if isinstance(features, dict):
        return [features], True
    if isinstance(features, list) and features and isinstance(features[0], dict):
        if len(features) > max_rows:
            raise TooManyRows(
                f"A batch may have at most {max_rows} rows; this one has "
                f"{len(features)}.",
                details={"limit": max_rows, "rows": len(features)},
            )
        for i, row in enumerate(features):
            if not isinstance(row, dict):
                raise InvalidFeatures(
                    f"features[{i}] is {_kind(row)}; in a batch of named rows "
                    "every row must be an object keyed by feature name.",
                    details={"reason": "not_an_object", "index": [i]},
                )
        return features, False
    return None, False


def named_rows(named: list, feature_names: tuple, *, label: str) -> np.ndarray:
    """Rows keyed by feature name as an array in the version's feature
    order. FeatureNamesMismatch (422) naming the missing and unknown
    names; InvalidFeatures for a value that is not a finite number."""
    if not feature_names:
        raise FeatureNamesMismatch(
            f"{label} has no feature names recorded; send each row as a "
            "list of numbers in the model's feature order.",
            details={"reason": "no_feature_names", "model_version": label},
        )
    wanted = set(feature_names)
    table = []
    for i, row in enumerate(named):
        if len(row) != len(wanted) or not wanted.issuperset(row):
            missing = [n for n in feature_names if n not in row]
            unknown = sorted(str(k) for k in row if k not in wanted)
            where = "features" if len(named) == 1 else f"features[{i}]"
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            raise FeatureNamesMismatch(
                f"{where} does not match the feature names of {label}: "
                f"{'; '.join(parts)}.",
                details={
                    "reason": "feature_names",
                    "index": [i],
                    "missing": missing,
                    "unknown": unknown,
                    "expected": list(feature_names),
                },
            )
        values = [row[name] for name in feature_names]
        for name, value in zip(feature_names, values, strict=True):
            kind = type(value)
            if kind is not float and kind is not int:
                where = "features" if len(named) == 1 else f"features[{i}]"
                raise InvalidFeatures(
                    f"{where}.{name} is {_kind(value)}; every feature must be "
                    "a number.",
                    details={
                        "reason": "not_a_number",
                        "index": [i],
                        "feature": name,
                        "type": _kind(value),
                    },
                )
        table.append(values)
    try:
        rows = np.array(table, dtype=np.float64)
    except OverflowError:
        rows = None
    if rows is None or not np.isfinite(rows).all():
        raise InvalidFeatures(
            "Features must be finite numbers within the float64 range.",
            details={"reason": "non_finite"},
        )
    return rows


def _rows(features, max_rows: int) -> tuple[np.ndarray, bool]:
    if not isinstance(features, list):
        raise InvalidFeatures(
            f'"features" is {_kind(features)}; it must be a list of numbers '
            "(one row), a list of such lists (a batch), or objects keyed by "
            "feature name.",
            details={"reason": "not_a_list", "type": _kind(features)},
        )
    if not features:
        raise InvalidFeatures('"features" is empty.', details={"reason": "empty"})
    if isinstance(features[0], list):
        if len(features) > max_rows:
            raise TooManyRows(
                f"A batch may have at most {max_rows} rows; this one has "
                f"{len(features)}.",
                details={"limit": max_rows, "rows": len(features)},
            )
        width = len(features[0])
        for i, row in enumerate(features):
            if not isinstance(row, list):
                raise InvalidFeatures(
                    f"features[{i}] is {_kind(row)}; in a batch every row "
                    "must be a list of numbers.",
                    details={"reason": "not_a_list", "index": [i]},
                )
            if not row:
                raise InvalidFeatures(
                    f"features[{i}] is empty.",
                    details={"reason": "empty", "index": [i]},
                )
            if len(row) != width:
                raise InvalidFeatures(
                    f"features[{i}] has {len(row)} values but features[0] "
                    f"has {width}; rows must have equal length.",
                    details={"reason": "ragged", "index": [i]},
                )
            _check_row(row, i)
        single = False
    else:
        _check_row(features, None)
        features = [features]
        single = True
    try:
        rows = np.array(features, dtype=np.float64)
    except OverflowError:
        rows = None
    if rows is None or not np.isfinite(rows).all():
        raise InvalidFeatures(
            "Features must be finite numbers within the float64 range.",
            details={"reason": "non_finite"},
        )
    return rows, single


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise ValidationFailed(
            f'"{key}" must be a non-empty string of at most 100 characters.',
            details={"field": key, "type": _kind(value)},
        )
    return value


def subject_key(data: dict) -> str:
    value = data.get("user_id")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed(
            '"user_id" must be a string or an integer.',
            details={"field": "user_id", "type": _kind(value)},
        )
    value = str(value)
    if not 0 < len(value) <= 200:
        raise ValidationFailed(
            '"user_id" must have 1 to 200 characters.',
            details={"field": "user_id", "length": len(value)},
        )
    return value


def decode_predict(body: bytes, *, max_rows: int) -> PredictRequest:
    """Parse and validate a /predict body. Raises BadRequest (400),
    MalformedJSON (400), InvalidFeatures / ValidationFailed (422) or
    TooManyRows (413)."""
    data = _parse(body)
    if not isinstance(data, dict):
        raise BadRequest(
            f'The body is {_kind(data)}; it must be a JSON object with "features".',
            details={"type": _kind(data)},
        )
    if "features" not in data:
        raise ValidationFailed(
            'The field "features" is required.',
            details={"field": "features", "reason": "missing"},
        )
    named, single = _named(data["features"], max_rows)
    rows = None
    if named is None:
        rows, single = _rows(data["features"], max_rows)
    use_ab = data.get("use_ab_testing", True)
    if use_ab is None:
        use_ab = True
    if not isinstance(use_ab, bool):
        raise ValidationFailed(
            '"use_ab_testing" must be true or false.',
            details={"field": "use_ab_testing", "type": _kind(use_ab)},
        )
    return PredictRequest(
        rows=rows,
        single=single,
        model=_optional_str(data, "model"),
        model_version=_optional_str(data, "model_version"),
        use_ab_testing=use_ab,
        subject_key=subject_key(data),
        body=data,
        named=named,
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _row_result(label, proba_row, class_keys) -> dict:
    result = {"prediction": _plain(label)}
    if proba_row is not None:
        values = proba_row.tolist()
        result["probabilities"] = dict(zip(class_keys, values, strict=True))
        result["confidence"] = max(values)
    else:
        result["probabilities"] = None
        result["confidence"] = None
    return result


def encode_predict(
    *,
    labels: np.ndarray,
    proba: np.ndarray | None,
    classes: tuple,
    single: bool,
    meta: dict,
) -> bytes:
    """The /predict response: the row result (flat for one row, a list
    under "predictions" for a batch) followed by the `meta` fields."""
    class_keys = [str(c) for c in classes]
    if proba is not None and len(class_keys) != proba.shape[1]:
        class_keys = [str(i) for i in range(proba.shape[1])]
    rows = [
        _row_result(labels[i], None if proba is None else proba[i], class_keys)
        for i in range(len(labels))
    ]
    body = rows[0] if single else {"predictions": rows}
    body.update(meta)
    return orjson.dumps(body)
