"""The Open Inference Protocol V2 codec, alone and against tritonclient."""

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import deserialize_bytes_tensor

from mlserving.dataplane.v2codec import (
    HEADER_LENGTH,
    INPUT_DATATYPES,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITIES,
    OutputRequest,
    decode_infer,
    encode_infer,
    error_body,
    model_metadata,
    output_names,
    outputs_check,
)
from mlserving.errors import ApplicationError, ValidationFailed

MAX_ROWS = 100


def body(**fields) -> bytes:
    return orjson.dumps(fields)


def tensor(data=None, *, shape=(2, 3), datatype="FP64", name="x", **extra):
    entry = {"name": name, "datatype": datatype, "shape": list(shape)}
    if data is not None:
        entry["data"] = data
    entry.update(extra)
    return entry


FLAT = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
TABLE = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def decode(raw: bytes, header_length: str | None = None, max_rows=MAX_ROWS):
    return decode_infer(raw, header_length=header_length, max_rows=max_rows)


def error_of(raw: bytes, header_length: str | None = None, max_rows=MAX_ROWS):
    with pytest.raises(ApplicationError) as info:
        decode(raw, header_length, max_rows)
    return info.value


# --- decoding: the happy paths ---------------------------------------------


@pytest.mark.parametrize("data", [FLAT, TABLE], ids=["flat", "nested"])
def test_decode_json_flat_and_nested_data(data):
    # when
    request = decode(body(id="r1", inputs=[tensor(data)]))

    # then
    assert request.rows.dtype == np.float64
    np.testing.assert_array_equal(request.rows, np.array(TABLE))
    assert request.id == "r1"
    assert request.input_name == "x"
    assert request.input_datatype == "FP64"
    assert request.outputs is None
    assert request.parameters == {}
    assert request.binary_default is False


def test_decode_nested_three_levels_keeps_row_major_order():
    data = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]

    request = decode(body(inputs=[tensor(data, shape=(2, 4), datatype="INT64")]))

    np.testing.assert_array_equal(request.rows, [[1, 2, 3, 4], [5, 6, 7, 8]])


@pytest.mark.parametrize("datatype", list(INPUT_DATATYPES))
def test_decode_every_datatype_in_json(datatype):
    data = [1, 2, -3, 4, 5, 6]

    request = decode(body(inputs=[tensor(data, datatype=datatype)]))

    assert request.input_datatype == datatype
    np.testing.assert_array_equal(request.rows, [[1, 2, -3], [4, 5, 6]])


@pytest.mark.parametrize("datatype", list(INPUT_DATATYPES))
def test_decode_every_datatype_in_binary(datatype):
    array = np.array([[1, 2, -3], [4, 5, 6]], dtype=INPUT_DATATYPES[datatype])
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    entry = tensor(datatype=datatype, parameters={"binary_data_size": len(raw)})
    header = body(inputs=[entry])

    request = decode(header + raw, str(len(header)))

    np.testing.assert_array_equal(request.rows, array.astype(np.float64))


def test_decode_fp32_json_rounds_like_binary():
    request = decode(body(inputs=[tensor([0.1] * 6, datatype="FP32")]))

    assert request.rows[0, 0] == float(np.float32(0.1))


def test_decode_parameters_and_binary_default():
    raw = body(inputs=[tensor(FLAT)], parameters={"binary_data_output": True})

    request = decode(raw)

    assert request.parameters == {"binary_data_output": True}
    assert request.binary_default is True


def test_decode_outputs_binary_falls_back_to_binary_data_output():
    raw = body(
        inputs=[tensor(FLAT)],
        outputs=[
            {"name": "label"},
            {"name": "probabilities", "parameters": {"binary_data": False}},
        ],
        parameters={"binary_data_output": True},
    )

    request = decode(raw)

    assert request.outputs == [
        OutputRequest("label", True),
        OutputRequest("probabilities", False),
    ]


def test_decode_header_length_without_binary_data():
    header = body(inputs=[tensor(FLAT)])

    request = decode(header, str(len(header)))

    np.testing.assert_array_equal(request.rows, np.array(TABLE))


# --- decoding: errors, each naming where ------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "named"),
    [
        pytest.param(b"[1, 2]", 400, "JSON object", id="not-an-object"),
        pytest.param(b"", 400, "empty", id="empty"),
        pytest.param(body(), 422, "inputs is required", id="no-inputs"),
        pytest.param(body(inputs={}), 422, "inputs is an object", id="inputs-obj"),
        pytest.param(body(inputs=[]), 422, "inputs has 0 tensors", id="0-inputs"),
        pytest.param(
            body(inputs=[tensor(FLAT), tensor(FLAT)]),
            422,
            "inputs has 2 tensors",
            id="2-inputs",
        ),
        pytest.param(body(inputs=[5]), 422, "inputs[0] is an integer", id="tensor"),
        pytest.param(
            body(inputs=[tensor(FLAT, name=3)]),
            422,
            "inputs[0].name",
            id="name",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, datatype="FP16")]),
            422,
            "inputs[0].datatype is 'FP16'; it must be one of FP32, FP64, INT32, INT64",
            id="datatype",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, shape=(6,))]),
            422,
            "inputs[0].shape is [6]",
            id="shape-1d",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, shape=(0, 3))]),
            422,
            "inputs[0].shape",
            id="shape-zero",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, shape=(True, 3))]),
            422,
            "inputs[0].shape",
            id="shape-bool",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, shape=(3, 3))]),
            422,
            "inputs[0].data has 6 values but the shape needs batch * n_features = 9",
            id="count",
        ),
        pytest.param(
            body(inputs=[tensor(None)]),
            422,
            "inputs[0].data is required",
            id="no-data",
        ),
        pytest.param(
            body(inputs=[tensor("1,2,3")]),
            422,
            "inputs[0].data is a string",
            id="data-str",
        ),
        pytest.param(
            body(inputs=[tensor([[1.0, 2.0, 3.0], [4.0, 5.0]])]),
            422,
            "inputs[0].data[1] has 2 values but its siblings have 3",
            id="ragged",
        ),
        pytest.param(
            body(inputs=[tensor([[1.0, 2.0, 3.0], 4.0, 5.0, 6.0])]),
            422,
            "inputs[0].data[1] is a number where its siblings are lists",
            id="mixed-nesting",
        ),
        pytest.param(
            body(inputs=[tensor([1.0, 2.0, "3", 4.0, 5.0, 6.0])]),
            422,
            "inputs[0].data[2] (row-major) is a string",
            id="string-element",
        ),
        pytest.param(
            body(inputs=[tensor([1, 2, 3.5, 4, 5, 6], datatype="INT32")]),
            422,
            "inputs[0].data[2] (row-major) is 3.5, not an integer",
            id="float-in-int",
        ),
        pytest.param(
            body(inputs=[tensor([1, 2, 2**31, 4, 5, 6], datatype="INT32")]),
            422,
            "inputs[0].data[2] (row-major) is 2147483648, outside the range of INT32",
            id="int32-range",
        ),
        pytest.param(
            body(inputs=[tensor([1e39] * 6, datatype="FP32")]),
            422,
            "finite",
            id="fp32-overflow",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, parameters=[])]),
            422,
            "inputs[0].parameters is a list",
            id="tensor-parameters",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT, parameters={"shared_memory_region": "r"})]),
            422,
            "inputs[0].parameters.shared_memory_region is not supported",
            id="shared-memory",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], id=7),
            422,
            "id is an integer",
            id="id-type",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], id="x" * 257),
            422,
            "id has 257 characters; at most 256",
            id="id-length",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], parameters=[1]),
            422,
            "parameters is a list; it must be an object",
            id="parameters",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], parameters={"binary_data_output": 1}),
            422,
            "parameters.binary_data_output is an integer",
            id="binary-data-output",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], outputs="label"),
            422,
            "outputs is a string",
            id="outputs-type",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], outputs=[{}]),
            422,
            "outputs[0].name is null",
            id="output-name",
        ),
        pytest.param(
            body(
                inputs=[tensor(FLAT)],
                outputs=[{"name": "label", "parameters": {"binary_data": "yes"}}],
            ),
            422,
            "outputs[0].parameters.binary_data is a string",
            id="output-binary-data",
        ),
        pytest.param(
            body(
                inputs=[tensor(FLAT)],
                outputs=[{"name": "label", "parameters": {"classification": 2}}],
            ),
            422,
            "outputs[0].parameters.classification is not supported",
            id="classification",
        ),
        pytest.param(
            body(inputs=[tensor(FLAT)], outputs=[{"name": "label"}] * 2),
            422,
            "outputs[1].name is 'label', already requested",
            id="duplicate-output",
        ),
    ],
)
def test_decode_rejects(raw, status, named):
    # when
    exc = error_of(raw)

    # then
    assert exc.status_code == status
    assert named in exc.message


def test_decode_invalid_json_names_the_position():
    exc = error_of(b'{"inputs": [}')

    assert exc.status_code == 400
    assert exc.code == "malformed_json"
    assert exc.details == {"position": 12}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_decode_nan_literal_is_invalid_features(literal):
    raw = b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1], '
    raw += b'"data": [' + literal.encode() + b"]}]}"

    exc = error_of(raw)

    assert exc.status_code == 422
    assert exc.code == "invalid_features"
    assert exc.details["reason"] == "non_finite"
    assert "NaN and Infinity are not allowed" in exc.message


@pytest.mark.parametrize("element", [True, None, {}], ids=["bool", "null", "obj"])
def test_decode_non_number_element_names_its_index(element):
    data = [1.0, 2.0, 3.0, 4.0, element, 6.0]

    exc = error_of(body(inputs=[tensor(data)]))

    assert exc.status_code == 422
    assert exc.code == "invalid_features"
    assert exc.details["index"] == 4
    assert "inputs[0].data[4] (row-major)" in exc.message


def test_decode_bool_in_nested_data_names_its_flat_index():
    exc = error_of(body(inputs=[tensor([[1, 2, 3], [4, False, 6]])]))

    assert exc.status_code == 422
    assert "inputs[0].data[4] (row-major) is a boolean" in exc.message


def test_decode_too_many_rows_is_413():
    raw = body(inputs=[tensor([1.0] * 33, shape=(11, 3))])

    exc = error_of(raw, max_rows=10)

    assert exc.status_code == 413
    assert exc.code == "too_many_rows"
    assert exc.details == {"limit": 10, "rows": 11}


def test_decode_non_finite_binary_value():
    raw = np.array([1.0, np.nan, 3.0], dtype="<f8").tobytes()
    header = body(
        inputs=[tensor(shape=(1, 3), parameters={"binary_data_size": len(raw)})]
    )

    exc = error_of(header + raw, str(len(header)))

    assert exc.status_code == 422
    assert exc.details["reason"] == "non_finite"


def binary_request(values=FLAT, size=None, datatype="FP64"):
    raw = np.array(values, dtype=INPUT_DATATYPES[datatype]).tobytes()
    size = len(raw) if size is None else size
    header = body(
        inputs=[tensor(datatype=datatype, parameters={"binary_data_size": size})]
    )
    return header, raw


@pytest.mark.parametrize(
    "header_length", ["abc", "-1", "+5", "1.5", "", "99999"], ids=repr
)
def test_decode_bad_header_length_is_400(header_length):
    header, raw = binary_request()

    exc = error_of(header + raw, header_length)

    assert exc.status_code == 400
    assert HEADER_LENGTH in exc.message


def test_decode_binary_sizes_must_add_up():
    header, raw = binary_request()

    short = error_of(header + raw[:-8], str(len(header)))
    extra = error_of(header + raw + b"\0", str(len(header)))

    assert short.status_code == extra.status_code == 400
    assert "declare 48 bytes" in short.message
    assert "40 bytes follow" in short.message
    assert "49 bytes follow" in extra.message


def test_decode_binary_data_without_header_is_400():
    header, raw = binary_request()

    # the binary part makes the body invalid JSON (or invalid UTF-8)
    exc = error_of(header + raw, None)
    # the binary part happens to be valid JSON whitespace
    spaces = error_of(header + b" " * 48, None)

    assert exc.status_code == spaces.status_code == 400
    assert f"needs the {HEADER_LENGTH} header" in exc.message
    assert f"no {HEADER_LENGTH} header" in spaces.message


def test_decode_binary_size_must_match_shape():
    header, raw = binary_request(values=FLAT[:5])

    exc = error_of(header + raw, str(len(header)))

    assert exc.status_code == 422
    assert "inputs[0].parameters.binary_data_size is 40 bytes" in exc.message
    assert "= 48" in exc.message


def test_decode_binary_and_json_data_together():
    raw = np.array(FLAT).tobytes()
    entry = tensor(FLAT, parameters={"binary_data_size": len(raw)})
    header = body(inputs=[entry])

    exc = error_of(header + raw, str(len(header)))

    assert exc.status_code == 422
    assert "inputs[0].data is present" in exc.message


# --- outputs -------------------------------------------------------------


def test_output_names():
    assert output_names(has_proba=True) == [OUTPUT_LABEL, OUTPUT_PROBABILITIES]
    assert output_names(has_proba=False) == [OUTPUT_LABEL]


def test_outputs_check_accepts_known_names():
    outputs_check(None, has_proba=False)
    outputs_check(
        [OutputRequest("probabilities", False), OutputRequest("label", True)],
        has_proba=True,
    )


@pytest.mark.parametrize(
    ("name", "has_proba"),
    [("scores", True), ("probabilities", False)],
    ids=["unknown", "no-proba"],
)
def test_outputs_check_rejects_unknown_names(name, has_proba):
    outputs = [OutputRequest("label", False), OutputRequest(name, False)]

    with pytest.raises(ValidationFailed) as info:
        outputs_check(outputs, has_proba=has_proba)

    exc = info.value
    assert exc.status_code == 422
    assert f"outputs[1].name is {name!r}" in exc.message
    assert exc.details["available"] == output_names(has_proba=has_proba)


def test_encode_checks_outputs_too():
    with pytest.raises(ValidationFailed) as info:
        encode(outputs=[OutputRequest("probabilities", False)], proba=None)

    assert "'probabilities'" in info.value.message


# --- encoding ------------------------------------------------------------

PROBA = np.array([[0.9, 0.1], [0.2, 0.8]])


def encode(
    *,
    labels=np.array([0, 1]),
    proba=PROBA,
    classes=(0, 1),
    outputs=None,
    binary_default=False,
    id=None,
):
    return encode_infer(
        model_name="iris",
        model_version="v1",
        id=id,
        labels=labels,
        proba=proba,
        classes=classes,
        outputs=outputs,
        binary_default=binary_default,
        parameters={"k": 1},
    )


@pytest.mark.parametrize(
    ("labels", "classes", "datatype", "data"),
    [
        pytest.param(np.array([0, 2]), (0, 1, 2), "INT64", [0, 2], id="int"),
        pytest.param(
            np.array(["a", "b"], dtype=object),
            ("a", "b"),
            "BYTES",
            ["a", "b"],
            id="str-object",
        ),
        pytest.param(np.array(["a", "b"]), ("a", "b"), "BYTES", ["a", "b"], id="str"),
        pytest.param(np.array([0.5, 1.5]), (), "FP64", [0.5, 1.5], id="float"),
        pytest.param(np.array([0.0, 2.0]), (0, 1, 2), "INT64", [0, 2], id="onnx"),
        pytest.param(
            np.array([True, False]), (False, True), "BOOL", [True, False], id="bool"
        ),
    ],
)
def test_encode_json_label_datatypes(labels, classes, datatype, data):
    # when
    raw, headers = encode(labels=labels, proba=None, classes=classes, id="r1")

    # then
    assert headers == {"content-type": "application/json"}
    assert orjson.loads(raw) == {
        "model_name": "iris",
        "model_version": "v1",
        "id": "r1",
        "parameters": {"k": 1},
        "outputs": [
            {"name": "label", "datatype": datatype, "shape": [2], "data": data}
        ],
    }


def test_encode_probabilities_row_major_and_no_id():
    raw, _ = encode()

    answer = orjson.loads(raw)
    assert "id" not in answer
    assert answer["outputs"][1] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [2, 2],
        "data": [0.9, 0.1, 0.2, 0.8],
    }


def test_encode_requested_outputs_only_in_request_order():
    raw, _ = encode(
        outputs=[OutputRequest("probabilities", False), OutputRequest("label", False)]
    )

    names = [o["name"] for o in orjson.loads(raw)["outputs"]]
    assert names == ["probabilities", "label"]


def test_encode_binary_layout():
    raw, headers = encode(
        outputs=[OutputRequest("label", True), OutputRequest("probabilities", False)]
    )

    length = int(headers[HEADER_LENGTH])
    assert headers["content-type"] == "application/octet-stream"
    answer = orjson.loads(raw[:length])
    assert answer["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in answer["outputs"][0]
    assert answer["outputs"][1]["data"] == [0.9, 0.1, 0.2, 0.8]
    assert raw[length:] == np.array([0, 1], dtype="<i8").tobytes()


def test_encode_binary_bytes_uses_length_prefixes():
    raw, headers = encode(
        labels=np.array(["setosa", "é"], dtype=object),
        proba=None,
        classes=("setosa", "é"),
        binary_default=True,
    )

    length = int(headers[HEADER_LENGTH])
    assert raw[length:] == b"\x06\x00\x00\x00setosa\x02\x00\x00\x00\xc3\xa9"
    assert list(deserialize_bytes_tensor(raw[length:])) == [
        b"setosa",
        "é".encode(),
    ]


# --- metadata and errors -------------------------------------------------


@pytest.mark.parametrize(
    ("classes", "datatype"),
    [
        ([0, 1, 2], "INT64"),
        ([np.int64(0), np.int64(1)], "INT64"),
        (["a", "b"], "BYTES"),
        ([0.5, 1], "FP64"),
        ([False, True], "BOOL"),
        ([], "BYTES"),
    ],
    ids=["int", "numpy-int", "str", "float", "bool", "unknown"],
)
def test_model_metadata_label_datatype(classes, datatype):
    metadata = model_metadata(
        name="iris",
        versions=["v1", "v2"],
        platform="sklearn",
        n_features=4,
        input_datatype="FP64",
        classes=classes,
        has_proba=False,
        signature={"n_features": 4},
    )

    assert metadata == {
        "name": "iris",
        "versions": ["v1", "v2"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": datatype, "shape": [-1]}],
        "parameters": {"signature": {"n_features": 4}},
    }


def test_model_metadata_with_proba_and_unknown_width():
    metadata = model_metadata(
        name="m",
        versions=["v1"],
        platform="onnx",
        n_features=None,
        input_datatype="FP32",
        classes=["a", "b", "c"],
        has_proba=True,
        signature={},
    )

    assert metadata["inputs"][0]["shape"] == [-1, -1]
    assert metadata["outputs"][1] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [-1, 3],
    }


def test_error_body():
    assert orjson.loads(error_body('bad "x"')) == {"error": 'bad "x"'}


# --- interoperability with tritonclient ----------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(INPUT_DATATYPES))
def test_tritonclient_request_decodes(binary, datatype):
    # given
    array = np.array([[1.5, -2, 3], [4, 5, 6.25]]).astype(INPUT_DATATYPES[datatype])
    infer_input = httpclient.InferInput("input-0", list(array.shape), datatype)
    infer_input.set_data_from_numpy(array, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
    ]
    raw, json_size = httpclient.InferenceServerClient.generate_request_body(
        [infer_input], outputs=outputs, request_id="req-7"
    )
    assert (json_size is None) is not binary

    # when
    request = decode(raw, None if json_size is None else str(json_size))

    # then
    np.testing.assert_array_equal(request.rows, array.astype(np.float64))
    assert request.id == "req-7"
    assert request.input_name == "input-0"
    assert request.input_datatype == datatype
    assert request.outputs == [
        OutputRequest("label", False),
        OutputRequest("probabilities", True),
    ]


def test_tritonclient_request_without_outputs_asks_binary():
    array = np.ones((1, 2), dtype=np.float32)
    infer_input = httpclient.InferInput("x", [1, 2], "FP32")
    infer_input.set_data_from_numpy(array)
    raw, json_size = httpclient.InferenceServerClient.generate_request_body(
        [infer_input]
    )

    request = decode(raw, str(json_size))

    assert request.outputs is None
    assert request.binary_default is True
    assert request.id is None


def parse_answer(raw: bytes, headers: dict) -> httpclient.InferResult:
    return httpclient.InferResult.from_response_body(
        raw, verbose=False, header_length=headers.get(HEADER_LENGTH)
    )


@pytest.mark.parametrize(
    ("label_binary", "proba_binary"),
    [(False, False), (True, True), (True, False), (False, True)],
    ids=["json", "binary", "label-binary", "proba-binary"],
)
@pytest.mark.parametrize(
    "labels",
    [
        np.array([2, 0, 1]),
        np.array(["virginica", "setosa", "versicolor"], dtype=object),
        np.array([2.5, 0.0, -1.0]),
    ],
    ids=["int", "str", "float"],
)
def test_tritonclient_parses_answer(labels, label_binary, proba_binary):
    # given
    proba = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.3, 0.4, 0.3]])
    outputs = [
        OutputRequest("label", label_binary),
        OutputRequest("probabilities", proba_binary),
    ]

    # when
    raw, headers = encode(
        labels=labels, proba=proba, classes=tuple(labels), outputs=outputs, id="r"
    )
    result = parse_answer(raw, headers)

    # then
    got = result.as_numpy("label")
    if labels.dtype == object and label_binary:
        # tritonclient gives BYTES in binary form as bytes objects.
        got = np.array([v.decode() for v in got], dtype=object)
    np.testing.assert_array_equal(got, labels)
    if labels.dtype != object:
        assert got.dtype == labels.dtype
    np.testing.assert_array_equal(result.as_numpy("probabilities"), proba)
    assert result.get_response()["id"] == "r"
    assert (HEADER_LENGTH in headers) is (label_binary or proba_binary)


def test_tritonclient_parses_default_binary_answer():
    raw, headers = encode(binary_default=True)

    result = parse_answer(raw, headers)

    np.testing.assert_array_equal(result.as_numpy("label"), [0, 1])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), PROBA)
    assert result.get_output("label")["parameters"] == {"binary_data_size": 16}


@pytest.mark.parametrize("datatype", [{}, [], None, 3])
def test_a_datatype_that_is_not_a_string_is_a_422(datatype):
    # found by schemathesis: a dict here was a 500 (unhashable)
    body = {
        "inputs": [{"name": "x", "shape": [1, 1], "datatype": datatype, "data": [1]}]
    }
    with pytest.raises(ApplicationError) as caught:
        decode_infer(orjson.dumps(body), header_length=None, max_rows=10)
    assert caught.value.status_code == 422
    assert "datatype" in caught.value.message
