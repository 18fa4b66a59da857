"""Model artifact bytes: which format they are in and what they hold, for
the upload gate.

An uploaded file is untrusted. A pickle (and so a joblib file) runs code
of its author's choosing when it is loaded, whatever its name, so nothing
here unpickles, and no file name is ever consulted: the format is read
from the bytes. Upload accepts two formats that load without running the
file's own code:

- skops: a zip of JSON and numpy arrays; loading constructs only types
  that skops trusts by default or that SKOPS_TRUSTED_TYPES names, and
  reads arrays with numpy's allow_pickle=False.
- ONNX: a protobuf graph; parsing it and building an ONNX Runtime session
  execute no Python.

Pickles are recognised only to be refused with a clear message.
"""

import io
import json
import pickletools
import warnings
import zipfile
import zlib
from dataclasses import dataclass, replace

import onnx
import onnx.checker
import skops.io

from mlserving.errors import PayloadTooLarge
from registry.errors import ArtifactLoadError
from registry.runtimes.base import Signature
from registry.runtimes.onnx import session_for
from registry.runtimes.sklearn import SklearnRuntime

PICKLE, SKOPS, ONNX = "pickle", "skops", "onnx"
ACCEPTED_FORMATS = (SKOPS, ONNX)
TRUSTED_TYPES_SETTING = "SKOPS_TRUSTED_TYPES"

# Compression ratios say nothing about small members (a few KiB of zeros
# compress 1000:1 and harm no one); the total-size limit bounds those.
_RATIO_MIN_BYTES = 1 << 20
# The compression methods zipfile can read; anything else would fail
# later, inside skops, with a less helpful message.
_ZIP_METHODS = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}
# joblib.dump(compress=...) wraps the pickle in one of these containers
# (joblib/compressor.py's prefixes); "ZF" is joblib < 0.9.3's zlib file.
_COMPRESSED_PICKLE_PREFIXES = (
    b"\x1f\x8b",  # gzip
    b"BZh",  # bz2
    b"\xfd7zXZ",  # xz
    b"]\x00",  # lzma (legacy .lzma container)
    b"\x04\x22\x4d\x18",  # lz4 frame
    b"ZF",
)
# Opcodes a pickle stream can begin with: those that take nothing from
# the stack. Protocol 0 and 1 pickles have no header: one of these, then
# a few opcodes that decode, is all that marks them.
_PICKLE_FIRST_OPCODES = frozenset(
    op.code.encode("latin-1") for op in pickletools.opcodes if not op.stack_before
)
_PICKLE_PROBE_OPCODES = 8
_ONNX_DTYPES = {1: "FP32", 11: "FP64"}  # TensorProto.FLOAT, DOUBLE
_PICKLE_REFUSAL = (
    "pickle/joblib files execute code when loaded and are not accepted by "
    "upload; register them from the server's disk with manage.py "
    "register_model."
)


class UploadRefused(ArtifactLoadError):
    """Uploaded bytes the server will not load; the message says why."""

    status_code = 422
    code = "artifact_refused"


class UntrustedTypes(UploadRefused):
    """A skops file holding types that SKOPS_TRUSTED_TYPES does not allow;
    details["untrusted_types"] lists them."""

    code = "artifact_untrusted_types"


@dataclass(frozen=True)
class Inspected:
    """What an accepted file holds, read before it is registered."""

    format: str  # SKOPS or ONNX
    signature: Signature
    # skops: the types outside skops' defaults the file needs (sorted),
    # all allowed by the caller's trusted list; ONNX: always empty.
    untrusted_types: list[str]
    input_dtype: str  # the V2 datatype the model takes: "FP64" or "FP32"
    sklearn_version: str | None  # skops: as recorded in the file
    has_proba: bool


def sniff(data: bytes) -> str | None:
    """PICKLE, SKOPS or ONNX, judged from the bytes alone (never a file
    name), or None for anything else. Executes nothing from `data`.

    Compressed joblib containers count as PICKLE: they hold one. A zip
    counts as SKOPS only if it lists a schema.json member; bytes count as
    ONNX only if they parse as a ModelProto with ir_version > 0, an
    opset_import and a graph with inputs and outputs (random bytes can
    parse as an empty protobuf message)."""
    found = _magic_format(data)
    if found is not None:
        return found
    if data[:4] == b"PK\x03\x04":
        return SKOPS if _zip_lists_schema(data) else None
    return ONNX if _onnx_model(data) is not None else None


def zip_check(
    data: bytes,
    *,
    max_bytes: int,
    max_members: int = 10_000,
    max_ratio: float = 200.0,
) -> None:
    """Refuse a zip that would be costly or unsafe to read, from its
    central directory only (nothing is decompressed).

    UploadRefused, naming the limit, when the zip is corrupt or encrypted,
    uses a compression method zipfile cannot read, has more than
    `max_members` members, a member name that is absolute or contains
    "..", a member over 1 MiB uncompressed whose file_size/compress_size
    exceeds `max_ratio`, or members whose sizes sum past `max_bytes`.

    Only the declared sizes are checked, and a header can lie; but
    zipfile never inflates a member past its declared file_size, and a
    member cut short there fails its CRC check, so the limits hold for
    whatever reads the zip through zipfile afterwards (skops does)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:  # BadZipFile, struct.error, EOFError, ...
        raise UploadRefused(
            f"The file is not a readable zip ({exc}).",
            details={"reason": "corrupt_zip"},
        ) from None
    if len(members) > max_members:
        raise UploadRefused(
            f"The zip has {len(members):,} members, over the limit of {max_members:,}.",
            details={"reason": "too_many_members", "limit": max_members},
        )
    total = 0
    for member in members:
        name = member.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts:
            raise UploadRefused(
                f"The zip member name {name!r} is absolute or contains '..'.",
                details={"reason": "unsafe_member_name", "member": name},
            )
        if member.flag_bits & 0x1:
            raise UploadRefused(
                f"The zip member {name!r} is encrypted.",
                details={"reason": "encrypted", "member": name},
            )
        if member.compress_type not in _ZIP_METHODS:
            raise UploadRefused(
                f"The zip member {name!r} uses compression method "
                f"{member.compress_type}, which cannot be read.",
                details={"reason": "unsupported_compression", "member": name},
            )
        if member.file_size > _RATIO_MIN_BYTES:
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > max_ratio:
                raise UploadRefused(
                    f"The zip member {name!r} expands {ratio:,.0f} times "
                    f"({member.compress_size:,} to {member.file_size:,} "
                    f"bytes), over the limit of {max_ratio:g}.",
                    details={
                        "reason": "compression_ratio",
                        "member": name,
                        "limit": max_ratio,
                    },
                )
        total += member.file_size
        # Checked per member so the message can name where it tipped over.
        if total > max_bytes:
            raise UploadRefused(
                f"The zip's members come to at least {total:,} bytes "
                f"uncompressed, over the limit of {max_bytes:,}.",
                details={"reason": "uncompressed_size", "limit": max_bytes},
            )


def skops_inspect(
    data: bytes,
    *,
    trusted: list[str],
    max_bytes: int,
    max_unpacked_bytes: int | None = None,
) -> tuple[Inspected, object]:
    """Load a skops file and describe it: (Inspected, the estimator).

    Checks, in order, before anything is constructed: the size
    (PayloadTooLarge, 413, past `max_bytes`), that the bytes are not a
    pickle, the zip (zip_check, limited to `max_unpacked_bytes`
    uncompressed, or `max_bytes` when that is None), that every type
    outside skops' defaults is in `trusted` (UntrustedTypes otherwise,
    naming each one). Then loads with exactly those types allowed.
    UploadRefused for anything skops cannot read and for an object
    without predict(); never a bare exception."""
    _size_check(data, max_bytes)
    _refuse_pickle(data)
    zip_check(
        data,
        max_bytes=max_bytes if max_unpacked_bytes is None else max_unpacked_bytes,
    )
    if not _zip_lists_schema(data):
        raise UploadRefused(
            "The zip has no schema.json member, so it is not a skops file.",
            details={"format": "zip"},
        )
    try:
        # Reads schema.json only: building the audit tree imports and
        # constructs nothing.
        untrusted = sorted(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # a malformed schema raises nearly anything
        raise _skops_unreadable(exc) from None
    allowed = set(trusted)
    refused = [name for name in untrusted if name not in allowed]
    if refused:
        raise UntrustedTypes(
            f"The skops file needs types that are not trusted: "
            f"{', '.join(refused)}. Review them, then add them to the "
            f"{TRUSTED_TYPES_SETTING} setting to allow them.",
            details={"untrusted_types": refused, "setting": TRUSTED_TYPES_SETTING},
        )
    try:
        with warnings.catch_warnings():
            # scikit-learn warns when the file came from another version;
            # sklearn_version reports that instead.
            warnings.simplefilter("ignore")
            estimator = skops.io.loads(data, trusted=untrusted)
    except Exception as exc:  # constructing trusted types can raise anything
        raise _skops_unreadable(exc) from None
    if not hasattr(estimator, "predict"):
        raise UploadRefused(
            f"The skops file holds a {type(estimator).__name__}, which has "
            "no predict().",
            details={"format": SKOPS, "type": type(estimator).__name__},
        )
    sklearn_version = _skops_sklearn_version(data)
    # The runtime that will serve the file reads the signature; the
    # version is the file's own, not this server's.
    signature = replace(
        SklearnRuntime.from_estimator(estimator).signature(),
        input_dtype="FP64",
        sklearn_version=sklearn_version,
    )
    inspected = Inspected(
        format=SKOPS,
        signature=signature,
        untrusted_types=untrusted,
        input_dtype="FP64",
        sklearn_version=sklearn_version,
        has_proba=hasattr(estimator, "predict_proba"),
    )
    return inspected, estimator


def onnx_inspect(data: bytes, *, max_bytes: int) -> Inspected:
    """Check an ONNX file and describe it.

    PayloadTooLarge (413) past `max_bytes`. UploadRefused when the bytes
    are a pickle or zip, do not parse as an ONNX model, fail
    onnx.checker, keep any tensor in external data (a path that could
    name a server file), do not take exactly one rank-2 float or double
    input, carry malformed "classes"/"feature_names" metadata, or do not
    give an ONNX Runtime session (its message is passed on)."""
    _size_check(data, max_bytes)
    _refuse_pickle(data)
    if data[:4] == b"PK\x03\x04":
        raise UploadRefused(
            "The file is a zip (a skops file?), not an ONNX model.",
            details={"format": "zip"},
        )
    model = _onnx_model(data)
    if model is None:
        raise UploadRefused(
            "The file is not an ONNX model: it does not parse as a "
            "ModelProto with an IR version, an opset import and a graph "
            "with inputs and outputs.",
            details={"format": None},
        )
    external = _external_tensors(model)
    if external:
        raise UploadRefused(
            "The ONNX model keeps tensors in external data files "
            f"({', '.join(external[:5])}); upload a self-contained model.",
            details={"external_tensors": external[:20]},
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, and ValueError for sizes
        raise UploadRefused(
            f"The ONNX model fails onnx.checker: {_first_line(exc)}",
            details={"format": ONNX},
        ) from None
    feed, input_dtype, n_features = _onnx_input(model)
    meta = {entry.key: entry.value for entry in model.metadata_props}
    classes = _json_list(meta, "classes")
    if classes is None:
        classes = _classifier_labels(model)
    feature_names = _json_list(meta, "feature_names") or []
    if not all(isinstance(name, str) for name in feature_names):
        raise UploadRefused(
            'The ONNX metadata "feature_names" must be a JSON list of strings.',
            details={"metadata_key": "feature_names"},
        )
    if feature_names and n_features and len(feature_names) != n_features:
        raise UploadRefused(
            f'The ONNX metadata "feature_names" names {len(feature_names)} '
            f"features but input {feed!r} takes {n_features}.",
            details={"metadata_key": "feature_names"},
        )
    _onnx_session_check(data)
    producer = model.producer_name or "unknown"
    return Inspected(
        format=ONNX,
        signature=Signature(
            model_type=meta.get("model_type") or f"onnx:{producer}",
            n_features=n_features,
            feature_names=feature_names,
            classes=classes,
            input_dtype=input_dtype,
            sklearn_version=None,
        ),
        untrusted_types=[],
        input_dtype=input_dtype,
        sklearn_version=None,
        has_proba=len(model.graph.output) > 1,
    )


def upload_inspect(
    data: bytes,
    *,
    trusted: list[str],
    max_bytes: int,
    max_unpacked_bytes: int | None = None,
) -> tuple[Inspected, object | None]:
    """The gate for uploaded bytes: (Inspected, the loaded estimator for
    skops or None for ONNX).

    PayloadTooLarge (413) past `max_bytes`; UploadRefused (422) for a
    pickle or joblib file (never loaded) and for anything that is neither
    skops nor ONNX; otherwise whatever skops_inspect (given
    `max_unpacked_bytes`) or onnx_inspect raise."""
    _size_check(data, max_bytes)
    found = sniff(data)
    if found == SKOPS:
        return skops_inspect(
            data,
            trusted=trusted,
            max_bytes=max_bytes,
            max_unpacked_bytes=max_unpacked_bytes,
        )
    if found == ONNX:
        return onnx_inspect(data, max_bytes=max_bytes), None
    if found == PICKLE:
        raise UploadRefused(_PICKLE_REFUSAL, details={"format": PICKLE})
    raise UploadRefused(
        "The file is neither a skops file (a zip with schema.json, from "
        "skops.io.dump) nor an ONNX model, and not a pickle either.",
        details={"format": None, "accepted": list(ACCEPTED_FORMATS)},
    )


def _size_check(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The model file is {len(data):,} bytes, over the limit of "
            f"{max_bytes:,} bytes.",
            details={"limit_bytes": max_bytes, "size_bytes": len(data)},
        )


def _refuse_pickle(data: bytes) -> None:
    if _magic_format(data) == PICKLE:
        raise UploadRefused(_PICKLE_REFUSAL, details={"format": PICKLE})


def _magic_format(data: bytes) -> str | None:
    """PICKLE when the leading bytes say pickle or a compressed joblib
    container; None when they do not (the caller looks further)."""
    if data[:4] == b"PK\x03\x04":
        return None
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return PICKLE
    if data.startswith(_COMPRESSED_PICKLE_PREFIXES) or _is_zlib(data):
        return PICKLE
    if data[:1] in _PICKLE_FIRST_OPCODES and _decodes_as_pickle(data):
        return PICKLE
    return None


def _is_zlib(data: bytes) -> bool:
    # RFC 1950: deflate method 8 and a header that is a multiple of 31.
    return (
        len(data) >= 2
        and data[0] & 0x0F == 8
        and data[0] >> 4 <= 7
        and ((data[0] << 8) | data[1]) % 31 == 0
        and _zlib_starts(data)
    )


def _zlib_starts(data: bytes) -> bool:
    # Two header bytes match by chance once in ~500 files; a stream that
    # inflates a little is no chance.
    try:
        zlib.decompressobj().decompress(data[:4096], 64)
    except zlib.error:
        return False
    return True


def _decodes_as_pickle(data: bytes) -> bool:
    """Whether the first few opcodes decode. pickletools only reads
    opcodes and their arguments; it imports and calls nothing."""
    try:
        for index, (opcode, _, _) in enumerate(pickletools.genops(data)):
            if opcode.name == "STOP" or index + 1 >= _PICKLE_PROBE_OPCODES:
                return True
    except Exception:  # any decoding failure: not a pickle we recognise
        return False
    return False


def _zip_lists_schema(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "schema.json" in archive.namelist()
    except Exception:  # BadZipFile, struct.error, EOFError, ...
        return False


def _onnx_model(data: bytes):
    """The parsed ModelProto when `data` is plausibly an ONNX model, else
    None. Protobuf parsing builds messages and runs nothing."""
    if not data:
        return None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # DecodeError, and RuntimeError from the C++ parser
        return None
    graph = model.graph
    if (
        model.ir_version <= 0
        or not model.opset_import
        or not graph.input
        or not graph.output
    ):
        return None
    return model


def _skops_unreadable(exc: Exception) -> UploadRefused:
    return UploadRefused(
        f"The skops file cannot be read: {_first_line(exc)}",
        details={"format": SKOPS},
    )


def _skops_sklearn_version(data: bytes) -> str | None:
    """The first "_sklearn_version" in schema.json, breadth first (the
    outermost estimator's), or None; skops keeps it as a JSON node whose
    content is the JSON-encoded string."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except Exception:  # already read once by skops; be safe regardless
        return None
    queue = [schema]
    while queue:
        node = queue.pop(0)
        if isinstance(node, list):
            queue.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "_sklearn_version" in node:
            version = _skops_json_value(node["_sklearn_version"])
            if isinstance(version, str):
                return version
        queue.extend(node.values())
    return None


def _skops_json_value(node):
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and isinstance(node.get("content"), str):
        try:
            return json.loads(node["content"])
        except ValueError:
            return node["content"]
    return None


def _external_tensors(model) -> list[str]:
    """Names of the tensors anywhere in the model (initializers, node
    attributes, subgraphs, functions) whose data lives outside it."""
    found: list[str] = []

    def tensor(t) -> None:
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            found.append(t.name or "(unnamed)")

    def sparse(s) -> None:
        tensor(s.values)
        tensor(s.indices)

    def nodes(node_list) -> None:
        for node in node_list:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    tensor(attribute.t)
                for t in attribute.tensors:
                    tensor(t)
                if attribute.HasField("sparse_tensor"):
                    sparse(attribute.sparse_tensor)
                for s in attribute.sparse_tensors:
                    sparse(s)
                if attribute.HasField("g"):
                    graph(attribute.g)
                for g in attribute.graphs:
                    graph(g)

    def graph(g) -> None:
        for t in g.initializer:
            tensor(t)
        for s in g.sparse_initializer:
            sparse(s)
        nodes(g.node)

    graph(model.graph)
    for function in model.functions:
        nodes(function.node)
    return found


def _onnx_input(model) -> tuple[str, str, int | None]:
    """(name, V2 datatype, feature count or None) of the model's one
    input; UploadRefused unless there is exactly one, rank 2, float or
    double."""
    # Before IR 4, initializers were listed as graph inputs too; ONNX
    # Runtime feeds only the others, so only those count.
    initialized = {t.name for t in model.graph.initializer}
    feeds = [i for i in model.graph.input if i.name not in initialized]
    if len(feeds) != 1:
        names = ", ".join(repr(i.name) for i in feeds) or "none"
        raise UploadRefused(
            "The ONNX model must take exactly one input (a rows x features "
            f"tensor); it takes {len(feeds)}: {names}.",
            details={"inputs": [i.name for i in feeds]},
        )
    feed = feeds[0]
    if not feed.type.HasField("tensor_type"):
        raise UploadRefused(
            f"The ONNX input {feed.name!r} is a "
            f"{feed.type.WhichOneof('value') or 'untyped value'}, not a "
            "tensor.",
            details={"input": feed.name},
        )
    tensor_type = feed.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
    if dtype is None:
        elem = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        raise UploadRefused(
            f"The ONNX input {feed.name!r} holds {elem}; only FLOAT and "
            "DOUBLE inputs are served.",
            details={"input": feed.name, "elem_type": elem},
        )
    rank = len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
    if rank != 2:
        has = "no declared shape" if rank is None else f"rank {rank}"
        raise UploadRefused(
            f"The ONNX input {feed.name!r} must be rank 2 (rows x "
            f"features); it has {has}.",
            details={"input": feed.name, "rank": rank},
        )
    width = tensor_type.shape.dim[1]
    n_features = (
        width.dim_value if width.HasField("dim_value") and width.dim_value > 0 else None
    )
    return feed.name, dtype, n_features


def _json_list(meta: dict, key: str) -> list | None:
    """metadata_props[key] as a JSON list, None when absent; the same
    json.loads OnnxRuntime applies to "classes" at load, so what fails
    here would fail there."""
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise UploadRefused(
            f'The ONNX metadata "{key}" must be a JSON list; it is {meta[key][:80]!r}.',
            details={"metadata_key": key},
        )
    return value


def _classifier_labels(model) -> list:
    """The class labels an ONNX-ML classifier or ZipMap node declares in
    the main graph, or []."""
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_int64s" and attribute.ints:
                return [int(v) for v in attribute.ints]
            if attribute.name == "classlabels_strings" and attribute.strings:
                return [v.decode("utf-8", "replace") for v in attribute.strings]
    return []


def _onnx_session_check(data: bytes) -> None:
    try:
        session_for(data, threads=1)
    except Exception as exc:  # onnxruntime raises its own Fail types
        raise UploadRefused(
            f"ONNX Runtime cannot load the model: {_first_line(exc)}",
            details={"format": ONNX},
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line[:300]}"
