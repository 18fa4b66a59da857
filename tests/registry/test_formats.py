"""The upload gate: formats judged from bytes, pickles refused unopened,
skops loaded only with trusted types, zip bombs and unsafe ONNX refused."""

import inspect
import io
import os
import pickle
import struct
import warnings
import zipfile

import joblib
import numpy as np
import onnx
import pytest
import sklearn
import skops.io
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlserving.errors import PayloadTooLarge
from registry.compile import TARGET_OPSET
from registry.formats import (
    ONNX,
    PICKLE,
    SKOPS,
    UntrustedTypes,
    UploadRefused,
    onnx_inspect,
    skops_inspect,
    sniff,
    upload_inspect,
    zip_check,
)
from registry.runtimes import SklearnRuntime

LIMIT = 50 << 20
TREE = "sklearn.tree._tree.Tree"


class Exploit:
    """Unpickling this runs `touch marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def iris():
    data = load_iris(as_frame=True)
    return data.data, data.target.to_numpy()


@pytest.fixture(scope="module")
def forest(iris):
    X, y = iris
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X.to_numpy(), y)


@pytest.fixture(scope="module")
def logistic(iris):
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X.to_numpy(), y)


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "exploited"


def skops_bytes(model, tmp_path, name="model.skops") -> bytes:
    path = tmp_path / name
    skops.io.dump(model, path)
    return path.read_bytes()


def onnx_bytes(model, dtype=np.float32, metadata=None) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = to_onnx(
            model,
            np.zeros((1, model.n_features_in_), dtype=dtype),
            options={id(model): {"zipmap": False}},
            target_opset=TARGET_OPSET,
        )
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def rows(n=200):
    """Rows over iris' range, none of them training rows."""
    rng = np.random.default_rng(7)
    return rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], size=(n, 4))


def zip_of(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


def tiny_onnx(
    inputs=(("X", TensorProto.FLOAT, [None, 3]),),
    node=None,
    initializers=(),
    opsets=(("", 17),),
) -> onnx.ModelProto:
    """Y = Identity(first input), or `node`, with the given inputs."""
    node = node or helper.make_node("Identity", [inputs[0][0]], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(*spec) for spec in inputs],
        [helper.make_tensor_value_info("Y", inputs[0][1], [None, 3])],
        initializer=list(initializers),
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets]
    )


# --- malicious pickles -------------------------------------------------


def malicious_payload(kind, marker, tmp_path) -> bytes:
    if kind.startswith("pickle"):
        return pickle.dumps(Exploit(marker), protocol=int(kind[-1]))
    compress = {
        "joblib": 0,
        "joblib-zlib": 3,
        "joblib-gzip": ("gzip", 3),
        "joblib-bz2": ("bz2", 3),
        "joblib-lzma": ("lzma", 3),
        "joblib-xz": ("xz", 3),
    }[kind]
    path = tmp_path / "model.joblib"
    joblib.dump(Exploit(marker), path, compress=compress)
    return path.read_bytes()


KINDS = [f"pickle-{p}" for p in range(6)] + [
    "joblib",
    "joblib-zlib",
    "joblib-gzip",
    "joblib-bz2",
    "joblib-lzma",
    "joblib-xz",
]


@pytest.mark.parametrize("kind", ["pickle-0", "pickle-5", "joblib-zlib"])
def test_the_exploit_is_live_when_unpickled(kind, marker, tmp_path):
    # given: the payload the tests below must never trigger
    data = malicious_payload(kind, marker, tmp_path)
    # when: loaded as the sklearn runtime would
    joblib.load(io.BytesIO(data))
    # then: the marker proves the refusals below are meaningful
    assert marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_malicious_pickle_is_refused_without_being_loaded(kind, marker, tmp_path):
    data = malicious_payload(kind, marker, tmp_path)

    assert sniff(data) == PICKLE
    with pytest.raises(UploadRefused) as refused:
        upload_inspect(data, trusted=[TREE], max_bytes=LIMIT)
    assert refused.value.status_code == 422
    assert refused.value.code == "artifact_refused"
    assert refused.value.details == {"format": "pickle"}
    assert "register_model" in refused.value.message
    with pytest.raises(UploadRefused):
        skops_inspect(data, trusted=[TREE], max_bytes=LIMIT)
    with pytest.raises(UploadRefused):
        onnx_inspect(data, max_bytes=LIMIT)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.skops", "model.onnx", "model"])
def test_renamed_pickle_is_still_a_pickle(name, marker, tmp_path):
    # given: the exploit saved under a trusted-looking name
    path = tmp_path / name
    path.write_bytes(pickle.dumps(Exploit(marker)))
    data = path.read_bytes()
    # then: sniff has no name to go by, and the bytes say pickle
    assert list(inspect.signature(sniff).parameters) == ["data"]
    assert sniff(data) == PICKLE
    with pytest.raises(UploadRefused) as refused:
        upload_inspect(data, trusted=[], max_bytes=LIMIT)
    assert refused.value.details["format"] == "pickle"
    with pytest.raises(UploadRefused) as refused:
        skops_inspect(data, trusted=[], max_bytes=LIMIT)
    assert refused.value.details["format"] == "pickle"
    assert not marker.exists()


def test_text_and_random_bytes_are_no_format(tmp_path):
    rng = np.random.default_rng(0)
    for data in [b"", b"hello", b"Name,age\n1,2\n", rng.bytes(4096)]:
        assert sniff(data) is None
        with pytest.raises(UploadRefused) as refused:
            upload_inspect(data, trusted=[], max_bytes=LIMIT)
        assert refused.value.details["accepted"] == ["skops", "onnx"]


# --- skops -------------------------------------------------------------


def test_skops_forest_loads_when_its_tree_type_is_trusted(forest, tmp_path):
    data = skops_bytes(forest, tmp_path)
    assert sniff(data) == SKOPS

    inspected, estimator = upload_inspect(data, trusted=[TREE], max_bytes=LIMIT)

    assert inspected.format == SKOPS
    assert inspected.untrusted_types == [TREE]
    assert inspected.input_dtype == "FP64"
    assert inspected.has_proba is True
    assert inspected.sklearn_version == sklearn.__version__
    assert inspected.signature.model_type == "RandomForestClassifier"
    assert inspected.signature.n_features == 4
    assert inspected.signature.classes == [0, 1, 2]
    batch = rows(200)
    assert np.array_equal(estimator.predict_proba(batch), forest.predict_proba(batch))


def test_skops_forest_is_refused_when_tree_is_not_trusted(forest, tmp_path):
    data = skops_bytes(forest, tmp_path)

    with pytest.raises(UntrustedTypes) as refused:
        skops_inspect(data, trusted=[], max_bytes=LIMIT)

    error = refused.value
    assert error.status_code == 422
    assert error.code == "artifact_untrusted_types"
    assert error.details["untrusted_types"] == [TREE]
    assert TREE in error.message
    assert "SKOPS_TRUSTED_TYPES" in error.message
    # the gate refuses the same way
    with pytest.raises(UntrustedTypes):
        upload_inspect(data, trusted=["numpy.float64"], max_bytes=LIMIT)


def test_skops_logistic_regression_needs_no_trust(logistic, tmp_path):
    data = skops_bytes(logistic, tmp_path)

    inspected, estimator = skops_inspect(data, trusted=[], max_bytes=LIMIT)

    assert inspected.untrusted_types == []
    assert inspected.signature.classes == [0, 1, 2]
    batch = rows(50)
    assert np.array_equal(estimator.predict(batch), logistic.predict(batch))


def test_skops_pipeline_signature_names_its_columns(iris, tmp_path):
    # given: a pipeline fitted on named columns
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X, y)
    # when
    inspected, estimator = skops_inspect(
        skops_bytes(model, tmp_path), trusted=[], max_bytes=LIMIT
    )
    # then: what the sklearn runtime will say, with the file's version
    signature = inspected.signature
    assert signature.model_type == "Pipeline"
    assert signature.n_features == 4
    assert signature.feature_names == list(X.columns)
    assert signature.classes == [0, 1, 2]
    assert signature.input_dtype == "FP64"
    assert signature.sklearn_version == sklearn.__version__
    served = SklearnRuntime.from_estimator(estimator).signature()
    assert (served.feature_names, served.classes) == (
        signature.feature_names,
        signature.classes,
    )


def test_skops_object_without_predict_is_refused(iris, tmp_path):
    scaler = StandardScaler().fit(iris[0].to_numpy())
    with pytest.raises(UploadRefused, match="no predict"):
        skops_inspect(skops_bytes(scaler, tmp_path), trusted=[], max_bytes=LIMIT)


def test_skops_with_bad_schema_or_missing_member_is_refused(logistic, tmp_path):
    good = skops_bytes(logistic, tmp_path)
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        schema = archive.read("schema.json")
    cases = {
        "not json": zip_of([("schema.json", b"{not json")]),
        "no protocol": zip_of([("schema.json", b'{"__class__": "x"}')]),
        "arrays missing": zip_of([("schema.json", schema)]),
    }
    for label, data in cases.items():
        assert sniff(data) == SKOPS, label
        with pytest.raises(UploadRefused) as refused:
            upload_inspect(data, trusted=[], max_bytes=LIMIT)
        assert refused.value.code == "artifact_refused", label


def test_skops_member_altered_after_zip_check_fails_its_crc(logistic, tmp_path):
    # given: one byte of a stored member changed; the central directory
    # still looks fine, so only reading the member can tell
    data = bytearray(skops_bytes(logistic, tmp_path))
    at = data.index(b"\x93NUMPY") + 60
    data[at] ^= 0xFF
    zip_check(bytes(data), max_bytes=LIMIT)
    # then
    with pytest.raises(UploadRefused, match="cannot be read"):
        skops_inspect(bytes(data), trusted=[], max_bytes=LIMIT)


def test_skops_over_the_size_limit_is_413(logistic, tmp_path):
    data = skops_bytes(logistic, tmp_path)
    with pytest.raises(PayloadTooLarge) as refused:
        upload_inspect(data, trusted=[], max_bytes=len(data) - 1)
    assert refused.value.status_code == 413
    assert refused.value.details["limit_bytes"] == len(data) - 1
    with pytest.raises(PayloadTooLarge):
        skops_inspect(data, trusted=[], max_bytes=len(data) - 1)


# --- zip bombs and unsafe zips ----------------------------------------


def test_zip_bomb_member_is_refused_for_its_ratio():
    data = zip_of([("schema.json", b"\0" * (50 << 20))])
    assert len(data) < 100_000
    with pytest.raises(UploadRefused) as refused:
        zip_check(data, max_bytes=1 << 30)
    assert refused.value.details["reason"] == "compression_ratio"
    assert "200" in refused.value.message
    with pytest.raises(UploadRefused):
        upload_inspect(data, trusted=[], max_bytes=10 << 20)


def test_unpacked_limit_is_separate_from_the_file_limit():
    # given: 4.5 MB unpacked from a file of a few KB
    members = [(f"{i}.npy", b"\0" * 900_000) for i in range(5)]
    data = zip_of([("schema.json", b"{}"), *members])
    # then: the unpacked limit, when given, is the one that counts
    with pytest.raises(UploadRefused) as refused:
        upload_inspect(data, trusted=[], max_bytes=LIMIT, max_unpacked_bytes=4_000_000)
    assert refused.value.details["reason"] == "uncompressed_size"
    with pytest.raises(UploadRefused) as refused:
        upload_inspect(data, trusted=[], max_bytes=4_000_000, max_unpacked_bytes=LIMIT)
    # past the zip check, skops finds the schema empty
    assert "cannot be read" in refused.value.message


def test_zip_whose_members_sum_past_the_limit_is_refused():
    # members under 1 MiB, so only the total can catch them
    data = zip_of([(f"{i}.npy", b"\0" * 900_000) for i in range(8)])
    with pytest.raises(UploadRefused) as refused:
        zip_check(data, max_bytes=5_000_000)
    assert refused.value.details["reason"] == "uncompressed_size"
    assert "5,000,000" in refused.value.message
    zip_check(data, max_bytes=8_000_000)


def test_zip_with_too_many_members_is_refused():
    data = zip_of(
        [("schema.json", b"{}")] + [(f"{i}", b"") for i in range(20_000)],
        compression=zipfile.ZIP_STORED,
    )
    with pytest.raises(UploadRefused) as refused:
        upload_inspect(data, trusted=[], max_bytes=LIMIT)
    assert refused.value.details["reason"] == "too_many_members"
    assert "10,000" in refused.value.message


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x"])
def test_zip_with_unsafe_member_name_is_refused(name):
    data = zip_of([("schema.json", b"{}"), (name, b"x")])
    with pytest.raises(UploadRefused) as refused:
        zip_check(data, max_bytes=LIMIT)
    assert refused.value.details == {
        "reason": "unsafe_member_name",
        "member": name,
    }


def test_corrupt_zip_is_refused(logistic, tmp_path):
    data = skops_bytes(logistic, tmp_path)
    truncated = data[: len(data) // 2]
    assert sniff(truncated) is None
    with pytest.raises(UploadRefused) as refused:
        zip_check(truncated, max_bytes=LIMIT)
    assert refused.value.details["reason"] == "corrupt_zip"
    with pytest.raises(UploadRefused):
        skops_inspect(truncated, trusted=[], max_bytes=LIMIT)
    with pytest.raises(UploadRefused):
        upload_inspect(truncated, trusted=[], max_bytes=LIMIT)


def test_encrypted_zip_is_refused():
    data = bytearray(zip_of([("schema.json", b"{}")]))
    # set the "encrypted" flag in the central directory entry
    entry = data.rindex(b"PK\x01\x02")
    (flags,) = struct.unpack_from("<H", data, entry + 8)
    struct.pack_into("<H", data, entry + 8, flags | 0x1)
    with pytest.raises(UploadRefused) as refused:
        zip_check(bytes(data), max_bytes=LIMIT)
    assert refused.value.details["reason"] == "encrypted"


# --- ONNX --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "expected"), [(np.float32, "FP32"), (np.float64, "FP64")]
)
def test_onnx_logistic_regression_is_described(logistic, dtype, expected):
    data = onnx_bytes(logistic, dtype, metadata={"classes": "[0, 1, 2]"})
    assert sniff(data) == ONNX

    inspected, estimator = upload_inspect(data, trusted=[], max_bytes=LIMIT)

    assert estimator is None
    assert inspected.format == ONNX
    assert inspected.input_dtype == expected
    assert inspected.has_proba is True
    assert inspected.untrusted_types == []
    assert inspected.sklearn_version is None
    assert inspected.signature.n_features == 4
    assert inspected.signature.classes == [0, 1, 2]
    assert inspected.signature.model_type == "onnx:skl2onnx"
    assert inspected.signature.input_dtype == expected


def test_onnx_metadata_names_the_type_and_features(logistic):
    names = ["a", "b", "c", "d"]
    data = onnx_bytes(
        logistic,
        metadata={
            "model_type": "LogisticRegression",
            "feature_names": '["a", "b", "c", "d"]',
        },
    )
    inspected = onnx_inspect(data, max_bytes=LIMIT)
    assert inspected.signature.model_type == "LogisticRegression"
    assert inspected.signature.feature_names == names


def test_onnx_classes_fall_back_to_the_classifier_node(forest):
    data = onnx_bytes(forest)
    assert onnx_inspect(data, max_bytes=LIMIT).signature.classes == [0, 1, 2]


def test_onnx_malformed_classes_metadata_is_refused(logistic):
    data = onnx_bytes(logistic, metadata={"classes": "0, 1, 2"})
    with pytest.raises(UploadRefused, match='"classes"'):
        onnx_inspect(data, max_bytes=LIMIT)


def test_onnx_garbage_and_truncated_files_are_refused(logistic):
    good = onnx_bytes(logistic)
    rng = np.random.default_rng(1)
    for label, data in {
        "truncated": good[: len(good) // 2],
        "empty message": b"",
        "ir_version only": b"\x08\x08",
        "random after a valid start": b"\x08\x08" + rng.bytes(500),
    }.items():
        with pytest.raises(UploadRefused):
            onnx_inspect(data, max_bytes=LIMIT)
        with pytest.raises(UploadRefused):
            upload_inspect(data, trusted=[], max_bytes=LIMIT)
        assert sniff(data) in (None, ONNX), label


def test_onnx_that_fails_the_checker_is_refused():
    # parses, so sniff says ONNX, but names an operator that does not exist
    model = tiny_onnx(node=helper.make_node("NoSuchOp", ["X"], ["Y"]))
    data = model.SerializeToString()
    assert sniff(data) == ONNX
    with pytest.raises(UploadRefused, match="onnx.checker"):
        onnx_inspect(data, max_bytes=LIMIT)


def test_onnx_that_onnx_runtime_cannot_load_is_refused():
    # custom domains pass the checker; ONNX Runtime has no kernel for it
    model = tiny_onnx(
        node=helper.make_node("Mystery", ["X"], ["Y"], domain="com.example"),
        opsets=(("", 17), ("com.example", 1)),
    )
    with pytest.raises(UploadRefused, match="ONNX Runtime cannot load"):
        onnx_inspect(model.SerializeToString(), max_bytes=LIMIT)


def test_onnx_with_external_data_is_refused(tmp_path):
    # given: an initializer whose data would be read from a server path
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(3, dtype=np.float32).tobytes())
    weights = helper.make_tensor("W", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in {"location": str(secret), "length": "12"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    model = tiny_onnx(
        node=helper.make_node("Add", ["X", "W"], ["Y"]), initializers=[weights]
    )
    # then
    with pytest.raises(UploadRefused, match="external data") as refused:
        onnx_inspect(model.SerializeToString(), max_bytes=LIMIT)
    assert refused.value.details["external_tensors"] == ["W"]


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        (
            (("X", TensorProto.FLOAT, [None, 3]), ("Z", TensorProto.FLOAT, [None, 3])),
            "exactly one input",
        ),
        ((("X", TensorProto.INT64, [None, 3]),), "INT64"),
        ((("X", TensorProto.FLOAT, [None, 3, 2]),), "rank 3"),
        # the checker wants a shape on graph inputs; either refusal is fine
        ((("X", TensorProto.FLOAT, None),), "shape"),
    ],
    ids=["two inputs", "int64", "rank 3", "no shape"],
)
def test_onnx_input_must_be_one_float_matrix(inputs, says):
    data = tiny_onnx(inputs=inputs).SerializeToString()
    with pytest.raises(UploadRefused, match=says):
        onnx_inspect(data, max_bytes=LIMIT)


def test_onnx_identity_matrix_model_is_accepted():
    # the same builder as the refusals above, with an input that passes
    inspected = onnx_inspect(tiny_onnx().SerializeToString(), max_bytes=LIMIT)
    assert inspected.signature.n_features == 3
    assert inspected.has_proba is False
    assert inspected.signature.classes == []


def test_onnx_over_the_size_limit_is_413(logistic):
    data = onnx_bytes(logistic)
    with pytest.raises(PayloadTooLarge) as refused:
        onnx_inspect(data, max_bytes=len(data) - 1)
    assert refused.value.status_code == 413
    with pytest.raises(PayloadTooLarge):
        upload_inspect(data, trusted=[], max_bytes=len(data) - 1)
    onnx_inspect(data, max_bytes=len(data))


def test_skops_and_onnx_bytes_are_not_confused(logistic, tmp_path):
    skops_data = skops_bytes(logistic, tmp_path)
    onnx_data = onnx_bytes(logistic)
    with pytest.raises(UploadRefused, match="zip"):
        onnx_inspect(skops_data, max_bytes=LIMIT)
    with pytest.raises(UploadRefused, match="zip"):
        skops_inspect(onnx_data, trusted=[], max_bytes=LIMIT)


@pytest.mark.parametrize("form", ["skops", "onnx"])
def test_damaged_files_are_refused_never_crash(form, forest, tmp_path):
    # given: a good file with a few bytes changed, sometimes cut short
    good = skops_bytes(forest, tmp_path) if form == "skops" else onnx_bytes(forest)
    rng = np.random.default_rng(3)
    for _ in range(150):
        data = bytearray(good)
        for at in rng.integers(0, len(data), rng.integers(1, 5)):
            data[at] = rng.integers(0, 256)
        if rng.random() < 0.2:
            data = data[: rng.integers(0, len(data))]
        # then: accepted, or refused with one of our errors (never a 500)
        try:
            upload_inspect(bytes(data), trusted=[TREE], max_bytes=LIMIT)
        except (UploadRefused, PayloadTooLarge):
            pass
