"""A third-party API fuzzer against a real web process: Schemathesis
generates requests from /openapi.json (valid and invalid ones, every
phase: examples, coverage, fuzzing, and stateful sequences along the
schema's links) and checks every answer: no server error, every response
matches the schema, no undocumented status code or content type, valid
data accepted, invalid data refused.

The server is the Procfile's `web` process with the demo-like registry of
the other tests. Writes (activate, rollback, aliases, experiments) are
part of what it sends: the registry it leaves behind is this test's own."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

# At least 5,000 generated cases (CI's first pass, on SQLite, runs a
# smaller sample with both set lower: .ci/run); the seed is printed and
# fixed so a failure can be replayed (`st replay` needs the same seed and
# server).
MIN_CASES = int(os.environ.get("SCHEMATHESIS_MIN_CASES", "5000"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "220"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261203"))


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    two_versions, start_server, tmp_path
):
    server = start_server(PREDICTION_CACHE_TTL="0", DEBUG="true")
    report = tmp_path / "schemathesis.json"
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    config = ROOT / "tests" / "servers" / "schemathesis.toml"
    if config.exists():
        command[1:1] = ["--config-file", str(config)]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=1500
    )
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(
        f"schemathesis {summary['schemathesis_version']}: "
        f"{cases['generated']} cases, {len(summary['failures'])} failure kinds, "
        f"{len(summary['errors'])} errors, seed {summary['seed']}, "
        f"{summary['running_time']:.0f} s"
    )
    output = result.stdout[-20000:]
    assert summary["operations"]["tested"] == summary["operations"]["selected"]
    assert cases["generated"] >= MIN_CASES, output
    # CPython 3.11's compile() can fail in a worker thread while Hypothesis
    # describes a lambda ("SystemError: AST constructor recursion depth
    # mismatch"): a tool error, not an answer of ours; any other is ours.
    tool_errors = result.stdout.count("AST constructor recursion depth mismatch")
    errors = sum(e["count"] for e in summary["errors"])
    assert errors <= tool_errors, output
    assert summary["failures"] == [], output
    # exit status 1 then comes from the tool errors alone
    assert result.returncode == (1 if errors else 0), output
