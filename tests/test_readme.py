"""The README's curl examples, run verbatim (but for the port) against a
real server: the README cannot drift from what the API does."""

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

EXAMPLE = re.compile(r"^(curl .+)\n# -> (\d{3})$", re.MULTILINE)


def readme_examples() -> list[tuple[str, int]]:
    text = (ROOT / "README.md").read_text()
    return [(cmd, int(status)) for cmd, status in EXAMPLE.findall(text)]


def test_the_readme_has_an_example_for_every_seed_endpoint():
    commands = " ".join(cmd for cmd, _ in readme_examples())
    for path in (
        "/health",
        "/predict",
        "/models",
        "/models/v2.0/activate",
        "/models/rollback",
        "/metrics",
        "/ab-test/status",
        "/ab-test/configure",
        "/feedback",
    ):
        assert f"localhost:8000{path}" in commands, path


def test_readme_examples_run_as_written(two_versions, start_server):
    server = start_server()
    for command, expected in readme_examples():
        command = command.replace("http://localhost:8000", server.url)
        result = subprocess.run(
            f"{command} -w '\\n%{{http_code}}'",
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, _, status = result.stdout.rpartition("\n")
        assert result.returncode == 0, (command, result.stderr)
        assert int(status) == expected, (command, body)
        if "/metrics/prometheus" in command:
            assert "# TYPE mlserving_events_dropped_total counter" in body
        else:
            json.loads(body)  # every other answer is JSON
