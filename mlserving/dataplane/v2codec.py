"""Decoding and encoding for the Open Inference Protocol V2 (KServe V2,
Triton's HTTP/REST API): the /v2/models/.../infer body and answer, the
model metadata object and the error body.

Both forms of tensor data interoperate with `tritonclient.http`:
- JSON: `data` in the JSON body, flat row-major or nested lists;
- the binary tensor data extension: the JSON header is the first N bytes
  of the body (N in the `Inference-Header-Content-Length` header) and
  the raw little-endian tensors follow it, each declared by its
  `parameters.binary_data_size`.
https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md

Our models take one 2-D table, so a request carries exactly one input
tensor of shape [batch, n_features].
"""

import re
import struct
from dataclasses import dataclass

import numpy as np
import orjson

from mlserving.errors import BadRequest, MalformedJSON, ValidationFailed
from registry.errors import InvalidFeatures, TooManyRows

# The header naming the length of the JSON part of a body with binary
# tensor data (request and answer alike).
HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
# Triton answers with this when binary data follows the JSON header;
# tritonclient does not look at it, but any other client needs a hint
# that the body is not plain JSON.
BINARY_CONTENT_TYPE = "application/octet-stream"

INPUT_DATATYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT32": np.int32,
    "INT64": np.int64,
}
# The name model_metadata gives the one input; requests may name it
# anything, as the name carries no meaning for a one-input model.
INPUT_NAME = "input-0"
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"

_MAX_ID_LENGTH = 256
_DIGITS = re.compile(r"[0-9]+")
_INT_RANGES = {
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}
# Parameters of the protocol's extensions we do not implement; a client
# using them would otherwise get an answer that ignored them silently.
_UNSUPPORTED_INPUT_PARAMETERS = ("shared_memory_region",)
_UNSUPPORTED_OUTPUT_PARAMETERS = ("shared_memory_region", "classification")
_JSON_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
    dict: "an object",
    list: "a list",
}


@dataclass(slots=True)
class OutputRequest:
    name: str
    # Answer this output in the binary extension (the output's own
    # `binary_data`, else the request's `binary_data_output`).
    binary: bool


@dataclass(slots=True)
class InferRequest:
    # 2-D float64, shape (batch, n_features), every value finite.
    rows: np.ndarray
    # The request's "id", echoed in the answer.
    id: str | None
    input_name: str
    # As sent: FP32, FP64, INT32 or INT64.
    input_datatype: str
    # None: every output, in JSON unless `binary_default`.
    outputs: list[OutputRequest] | None
    # The request-level "parameters" object ({} when absent).
    parameters: dict

    @property
    def binary_default(self) -> bool:
        """The request's `parameters.binary_data_output`: whether outputs
        not requested by name are answered in binary (encode_infer's
        `binary_default`)."""
        return self.parameters.get("binary_data_output", False)


def _kind(value) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


# --- decoding ---------------------------------------------------------------


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary part of a body."""
    if header_length is None:
        return body, b""
    value = header_length.strip()
    if not _DIGITS.fullmatch(value):
        raise BadRequest(
            f"The {HEADER_LENGTH} header is {header_length!r}; it must be a "
            "non-negative integer, the length in bytes of the JSON part of "
            "the body.",
            details={"header": HEADER_LENGTH, "value": header_length},
        )
    length = int(value)
    if length > len(body):
        raise BadRequest(
            f"The {HEADER_LENGTH} header says the JSON part has {length} "
            f"bytes but the whole body has only {len(body)}.",
            details={
                "header": HEADER_LENGTH,
                "value": length,
                "body_bytes": len(body),
            },
        )
    return body[:length], body[length:]


def _parse(header: bytes, header_length: str | None):
    if not header.strip():
        raise BadRequest(
            'The JSON part of the body is empty; send a JSON object with "inputs".',
        )
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        # orjson refuses the NaN / Infinity literals some encoders write;
        # say so rather than "unexpected character".
        near = header[exc.pos : exc.pos + 9].lstrip(b"-")
        if near.startswith((b"NaN", b"Infinity")) or "infinity" in exc.msg:
            raise InvalidFeatures(
                "Features must be finite numbers: NaN and Infinity are not "
                "allowed (and are not valid JSON).",
                details={"reason": "non_finite", "position": exc.pos},
            ) from None
        raise MalformedJSON(
            f"The body is not valid JSON: {exc.msg} at position {exc.pos}."
            + _binary_hint(header, header_length),
            details={"position": exc.pos},
        ) from None


def _binary_hint(header: bytes, header_length: str | None) -> str:
    """A hint when the body looks like JSON followed by binary tensor data
    but the header saying where the JSON ends is missing."""
    if header_length is None and b'"binary_data_size"' in header:
        return (
            f" A body with binary tensor data needs the {HEADER_LENGTH} "
            "header, the length of its JSON part."
        )
    return ""


def _invalid(where: str, message: str, **details) -> ValidationFailed:
    return ValidationFailed(f"{where} {message}", details={"field": where, **details})


def _optional_object(data: dict, key: str, where: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(
            where, f"is {_kind(value)}; it must be an object.", type=_kind(value)
        )
    return value


def _name(tensor: dict, where: str) -> str:
    value = tensor.get("name")
    if not isinstance(value, str) or not value:
        raise _invalid(
            f"{where}.name",
            f"is {_kind(value)}; it must be a non-empty string.",
            type=_kind(value),
        )
    return value


def _is_int(value) -> bool:
    # bool is an int subclass, but JSON's true is not a number.
    return type(value) is int


def _request_id(data: dict) -> str | None:
    value = data.get("id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("id", f"is {_kind(value)}; it must be a string.")
    if len(value) > _MAX_ID_LENGTH:
        raise _invalid(
            "id",
            f"has {len(value)} characters; at most {_MAX_ID_LENGTH} are allowed.",
            length=len(value),
            limit=_MAX_ID_LENGTH,
        )
    return value


def _request_parameters(data: dict) -> dict:
    parameters = _optional_object(data, "parameters", "parameters")
    binary = parameters.get("binary_data_output")
    if binary is not None and not isinstance(binary, bool):
        raise _invalid(
            "parameters.binary_data_output",
            f"is {_kind(binary)}; it must be true or false.",
            type=_kind(binary),
        )
    return parameters


def _shape(tensor: dict, where: str) -> tuple[int, int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(_is_int(n) and n > 0 for n in shape)
    ):
        raise _invalid(
            f"{where}.shape",
            f"is {orjson.dumps(shape).decode()[:100]}; it must be a list of "
            "two positive integers, [batch, n_features].",
        )
    return shape[0], shape[1]


def _datatype(tensor: dict, where: str) -> str:
    value = tensor.get("datatype")
    # a dict or list is unhashable: check the type before the lookup
    if not isinstance(value, str) or value not in INPUT_DATATYPES:
        shown = value if isinstance(value, str) else _kind(value)
        raise _invalid(
            f"{where}.datatype",
            f"is {shown!r}; it must be one of {', '.join(INPUT_DATATYPES)}.",
            accepted=list(INPUT_DATATYPES),
        )
    return value


def _flatten(data: list, where: str) -> list:
    """The scalars of `data` in row-major order; nested lists must form a
    regular array (equal lengths and depth at each level)."""
    if not any(type(v) is list for v in data):
        return data
    flat: list = []
    # Each level's lists must share the first one's length and kind, so
    # the nesting is a real tensor and row-major order is well defined.
    level = [(data, where)]
    while level:
        first = level[0][0]
        width = len(first)
        nested = bool(first) and type(first[0]) is list
        below = []
        for items, path in level:
            if len(items) != width:
                raise _invalid(
                    path,
                    f"has {len(items)} values but its siblings have {width}; "
                    "nested data must be regular.",
                    reason="ragged",
                )
            for j, value in enumerate(items):
                if (type(value) is list) != nested:
                    raise _invalid(
                        f"{path}[{j}]",
                        f"is {_kind(value)} where its siblings are "
                        f"{'lists' if nested else 'not lists'}; nested data "
                        "must be regular.",
                        reason="ragged",
                    )
                if nested:
                    below.append((value, f"{path}[{j}]"))
        if not nested:
            for items, _path in level:
                flat.extend(items)
        level = below
    return flat


def _json_rows(data, datatype: str, count: int, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise _invalid(
            where,
            f"is {_kind(data)}; it must be a list of numbers (flat "
            "row-major or nested).",
            type=_kind(data),
        )
    flat = _flatten(data, where)
    if len(flat) != count:
        raise _invalid(
            where,
            f"has {len(flat)} values but the shape needs batch * n_features = {count}.",
            reason="count_mismatch",
            values=len(flat),
            expected=count,
        )
    integer = datatype in _INT_RANGES
    for i, value in enumerate(flat):
        kind = type(value)
        if kind is int or (kind is float and not integer):
            continue
        if kind is float:
            problem = f"is {value!r}, not an integer, but the datatype is {datatype}"
        else:
            problem = f"is {_kind(value)}; every value must be a number"
        # The index is into the flat row-major order, which is what the
        # client can compute whichever nesting it sent.
        raise InvalidFeatures(
            f"{where}[{i}] (row-major) {problem}.",
            details={
                "reason": "not_a_number",
                "field": where,
                "index": i,
                "type": _kind(value),
            },
        )
    if integer:
        low, high = _INT_RANGES[datatype]
        for i, value in enumerate(flat):
            if not low <= value <= high:
                raise InvalidFeatures(
                    f"{where}[{i}] (row-major) is {value}, outside the range "
                    f"of {datatype}.",
                    details={"reason": "out_of_range", "field": where, "index": i},
                )
    rows = np.array(flat, dtype=np.float64)
    if datatype == "FP32":
        # The client declared float32 values: round them so JSON data
        # gives the same rows as the same tensor sent in binary.
        with np.errstate(over="ignore"):
            rows = rows.astype(np.float32).astype(np.float64)
    return rows


def _binary_rows(
    raw: bytes, datatype: str, count: int, size: int, where: str
) -> np.ndarray:
    dtype = np.dtype(INPUT_DATATYPES[datatype]).newbyteorder("<")
    expected = count * dtype.itemsize
    if size != expected:
        raise _invalid(
            f"{where}.parameters.binary_data_size",
            f"is {size} bytes but the shape and datatype need batch * "
            f"n_features * {dtype.itemsize} = {expected}.",
            reason="count_mismatch",
            bytes=size,
            expected=expected,
        )
    return np.frombuffer(raw, dtype=dtype).astype(np.float64)


def _binary_size(parameters: dict, where: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not _is_int(size) or size < 0:
        raise _invalid(
            f"{where}.parameters.binary_data_size",
            f"is {orjson.dumps(size).decode()[:50]}; it must be a "
            "non-negative integer.",
        )
    return size


def _input_rows(
    data: dict, binary: bytes, header_length: str | None, max_rows: int
) -> tuple[np.ndarray, str, str]:
    inputs = data.get("inputs")
    if inputs is None:
        raise _invalid("inputs", "is required.", reason="missing")
    if not isinstance(inputs, list):
        raise _invalid("inputs", f"is {_kind(inputs)}; it must be a list.")
    if len(inputs) != 1:
        raise _invalid(
            "inputs",
            f"has {len(inputs)} tensors; the model takes exactly one, a "
            "2-D table [batch, n_features].",
            count=len(inputs),
        )
    where = "inputs[0]"
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise _invalid(where, f"is {_kind(tensor)}; it must be an object.")
    name = _name(tensor, where)
    datatype = _datatype(tensor, where)
    batch, width = _shape(tensor, where)
    if batch > max_rows:
        raise TooManyRows(
            f"A batch may have at most {max_rows} rows; {where}.shape says {batch}.",
            details={"limit": max_rows, "rows": batch},
        )
    parameters = _optional_object(tensor, "parameters", f"{where}.parameters")
    for key in _UNSUPPORTED_INPUT_PARAMETERS:
        if key in parameters:
            raise _invalid(
                f"{where}.parameters.{key}",
                "is not supported: send the data in the body.",
            )
    size = _binary_size(parameters, where)
    # With one input, "the binary sizes add up" means its size is the
    # whole binary part.
    declared = size or 0
    if declared != len(binary):
        if header_length is None:
            raise BadRequest(
                f"{where} declares {declared} bytes of binary data but the "
                f"request has no {HEADER_LENGTH} header to say where the "
                "JSON part ends.",
                details={"header": HEADER_LENGTH},
            )
        raise BadRequest(
            f"The inputs declare {declared} bytes of binary data "
            f"(parameters.binary_data_size) but {len(binary)} bytes follow "
            f"the JSON part ({HEADER_LENGTH}: {header_length.strip()}).",
            details={"declared": declared, "received": len(binary)},
        )
    has_data = "data" in tensor
    if size is not None and has_data:
        raise _invalid(
            f"{where}.data",
            "is present but the tensor also declares binary data "
            "(parameters.binary_data_size); send one or the other.",
        )
    if size is None and not has_data:
        raise _invalid(
            f"{where}.data",
            "is required (or binary data with parameters.binary_data_size).",
            reason="missing",
        )
    count = batch * width
    if size is None:
        flat = _json_rows(tensor["data"], datatype, count, f"{where}.data")
    else:
        flat = _binary_rows(binary, datatype, count, size, where)
    rows = flat.reshape(batch, width)
    if not np.isfinite(rows).all():
        raise InvalidFeatures(
            "Features must be finite numbers within the float64 range "
            f"(and the range of {datatype}).",
            details={"reason": "non_finite", "field": where},
        )
    return rows, name, datatype


def _outputs(data: dict, binary_default: bool) -> list[OutputRequest] | None:
    outputs = data.get("outputs")
    # An empty list asks for nothing in particular: answer everything,
    # as when "outputs" is absent.
    if outputs is None or outputs == []:
        return None
    if not isinstance(outputs, list):
        raise _invalid("outputs", f"is {_kind(outputs)}; it must be a list.")
    requested: list[OutputRequest] = []
    seen: set[str] = set()
    for i, output in enumerate(outputs):
        where = f"outputs[{i}]"
        if not isinstance(output, dict):
            raise _invalid(where, f"is {_kind(output)}; it must be an object.")
        name = _name(output, where)
        if name in seen:
            raise _invalid(
                f"{where}.name",
                f"is {name!r}, already requested; name each output once.",
                reason="duplicate",
            )
        seen.add(name)
        parameters = _optional_object(output, "parameters", f"{where}.parameters")
        for key in _UNSUPPORTED_OUTPUT_PARAMETERS:
            if key in parameters:
                raise _invalid(f"{where}.parameters.{key}", "is not supported.")
        binary = parameters.get("binary_data")
        if binary is None:
            binary = binary_default
        elif not isinstance(binary, bool):
            raise _invalid(
                f"{where}.parameters.binary_data",
                f"is {_kind(binary)}; it must be true or false.",
                type=_kind(binary),
            )
        requested.append(OutputRequest(name=name, binary=binary))
    return requested


def decode_infer(
    body: bytes, *, header_length: str | None, max_rows: int
) -> InferRequest:
    """Parse and validate a V2 inference request.

    `header_length` is the raw `Inference-Header-Content-Length` request
    header (None when absent): the first that many bytes of `body` are
    the JSON header, the rest the binary data of the inputs declaring
    `parameters.binary_data_size`.

    Raises BadRequest (400: bad header length, binary sizes that do not
    add up, a body that is not an object), MalformedJSON (400),
    ValidationFailed / InvalidFeatures (422) or TooManyRows (413, the
    batch is over `max_rows`). Output names are not checked here: see
    outputs_check.
    """
    header, binary = _split(body, header_length)
    data = _parse(header, header_length)
    if not isinstance(data, dict):
        raise BadRequest(
            f'The body is {_kind(data)}; it must be a JSON object with "inputs".',
            details={"type": _kind(data)},
        )
    request_id = _request_id(data)
    parameters = _request_parameters(data)
    outputs = _outputs(data, parameters.get("binary_data_output", False))
    rows, name, datatype = _input_rows(data, binary, header_length, max_rows)
    return InferRequest(
        rows=rows,
        id=request_id,
        input_name=name,
        input_datatype=datatype,
        outputs=outputs,
        parameters=parameters,
    )


# --- encoding ---------------------------------------------------------------


def output_names(*, has_proba: bool) -> list[str]:
    """The outputs a model answers, in answer order."""
    if has_proba:
        return [OUTPUT_LABEL, OUTPUT_PROBABILITIES]
    return [OUTPUT_LABEL]


# MLServer's scikit-learn runtime names its outputs after the methods;
# clients written for it ask for these and get them under the same names.
OUTPUT_ALIASES = {"predict": OUTPUT_LABEL, "predict_proba": OUTPUT_PROBABILITIES}


def outputs_check(outputs: list[OutputRequest] | None, *, has_proba: bool) -> None:
    """Raise ValidationFailed (422) when `outputs` names an output the
    model does not have; call it before running the model."""
    if outputs is None:
        return
    available = output_names(has_proba=has_proba)
    for i, output in enumerate(outputs):
        if OUTPUT_ALIASES.get(output.name, output.name) not in available:
            raise ValidationFailed(
                f"outputs[{i}].name is {output.name!r}; this model's "
                f"outputs are {', '.join(available)}.",
                details={
                    "field": f"outputs[{i}].name",
                    "output": output.name,
                    "available": available,
                },
            )


def _values_datatype(values) -> str:
    """The V2 datatype that holds every value: BOOL, INT64, FP64, else
    BYTES (also for no values)."""
    values = list(values)
    if not values:
        return "BYTES"
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "BOOL"
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        return "BYTES"
    if all(isinstance(v, (int, np.integer)) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return "FP64"
    return "BYTES"


def _label_datatype(labels: np.ndarray, classes: tuple) -> str:
    kind = labels.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        # A runtime may return integer classes as floats (ONNX does);
        # answer INT64 then, as model_metadata promised from the classes.
        if (
            _values_datatype(classes) == "INT64"
            and np.isfinite(labels).all()
            and (labels == np.round(labels)).all()
        ):
            return "INT64"
        return "FP64"
    if kind == "O":
        return _values_datatype(labels.ravel().tolist())
    return "BYTES"


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _tensor_data(values: np.ndarray, datatype: str, binary: bool) -> list | bytes:
    """`values` flat, as a JSON list or Triton's binary form (raw
    little-endian; BYTES as a 4-byte little-endian length before each
    element)."""
    flat = values.ravel()
    if datatype == "BYTES":
        if binary:
            return b"".join(
                struct.pack("<I", len(b)) + b
                for b in (_as_bytes(v) for v in flat.tolist())
            )
        return [_as_text(v) for v in flat.tolist()]
    dtype = {"BOOL": np.bool_, "INT64": "<i8", "FP64": "<f8"}[datatype]
    array = flat.astype(dtype)
    return array.tobytes() if binary else array.tolist()


def encode_infer(
    *,
    model_name: str,
    model_version: str,
    id: str | None,
    labels: np.ndarray,
    proba: np.ndarray | None,
    classes: tuple,
    outputs: list[OutputRequest] | None,
    binary_default: bool,
    parameters: dict,
) -> tuple[bytes, dict[str, str]]:
    """The V2 inference answer and its extra response headers.

    Outputs: `label` (shape [batch]; INT64, FP64, BOOL or BYTES after the
    labels) and, when `proba` is not None, `probabilities` (FP64, shape
    [batch, n_classes]). `outputs` None answers every output, in binary
    when `binary_default`; else the requested ones in request order.

    The headers always hold "content-type"; when an output is binary
    they also hold `Inference-Header-Content-Length`, the length of the
    JSON part, and the raw tensors follow it in output order.

    Raises ValidationFailed (422) when `outputs` names an unknown output.
    """
    outputs_check(outputs, has_proba=proba is not None)
    if outputs is None:
        outputs = [
            OutputRequest(name=name, binary=binary_default)
            for name in output_names(has_proba=proba is not None)
        ]
    labels = np.asarray(labels)
    tensors = {
        OUTPUT_LABEL: (
            labels,
            _label_datatype(labels, classes),
            list(labels.shape),
        )
    }
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        tensors[OUTPUT_PROBABILITIES] = (proba, "FP64", list(proba.shape))
    entries = []
    chunks = []
    for output in outputs:
        values, datatype, shape = tensors[OUTPUT_ALIASES.get(output.name, output.name)]
        data = _tensor_data(values, datatype, output.binary)
        entry = {"name": output.name, "datatype": datatype, "shape": shape}
        if output.binary:
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = data
        entries.append(entry)
    answer = {"model_name": model_name, "model_version": model_version}
    if id is not None:
        answer["id"] = id
    answer["parameters"] = parameters
    answer["outputs"] = entries
    header = orjson.dumps(answer)
    if not chunks:
        return header, {"content-type": JSON_CONTENT_TYPE}
    return header + b"".join(chunks), {
        "content-type": BINARY_CONTENT_TYPE,
        HEADER_LENGTH: str(len(header)),
    }


def model_metadata(
    *,
    name: str,
    versions: list[str],
    platform: str,
    n_features: int | None,
    input_datatype: str,
    classes: list,
    has_proba: bool,
    signature: dict,
) -> dict:
    """The V2 model metadata object (GET /v2/models/{name}[/versions/v]).
    Unknown sizes are -1; the label datatype follows `classes` (BYTES
    when none are known)."""
    outputs = [
        {
            "name": OUTPUT_LABEL,
            "datatype": _values_datatype(classes),
            "shape": [-1],
        }
    ]
    if has_proba:
        outputs.append(
            {
                "name": OUTPUT_PROBABILITIES,
                "datatype": "FP64",
                "shape": [-1, len(classes) or -1],
            }
        )
    return {
        "name": name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [
            {
                "name": INPUT_NAME,
                "datatype": input_datatype,
                "shape": [-1, n_features or -1],
            }
        ],
        "outputs": outputs,
        "parameters": {"signature": signature},
    }


def error_body(message: str) -> bytes:
    """The protocol's error body, `{"error": "<message>"}`."""
    return orjson.dumps({"error": message})
