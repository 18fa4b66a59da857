"""Which processes of this deployment run on this host, by role.

Each process registers itself once at start (web, ws, ingest, worker, beat, redis)
with a small file under VAR_DIR/run/roles; the system sampler reads them to
report the RSS of each role. Files of dead processes are removed when
found.
"""

import os
from pathlib import Path

import psutil
from django.conf import settings


def _dir() -> Path:
    return Path(settings.VAR_DIR) / "run" / "roles"


def role_register(role: str, pid: int | None = None) -> None:
    pid = pid or os.getpid()
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        return
    directory = _dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{role}.{pid}").write_text(f"{created!r}\n")


def role_processes() -> dict[str, dict]:
    """{role: {"count": n, "rss_bytes": total, "pids": [...]}} of the live
    registered processes."""
    found: dict[str, dict] = {}
    directory = _dir()
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        role, _, pid_text = path.name.rpartition(".")
        try:
            pid = int(pid_text)
            created = float(path.read_text())
            process = psutil.Process(pid)
            if abs(process.create_time() - created) > 1:
                raise psutil.NoSuchProcess(pid)  # the pid was reused
            rss = process.memory_info().rss
        except (ValueError, OSError, psutil.NoSuchProcess, psutil.ZombieProcess):
            path.unlink(missing_ok=True)
            continue
        except psutil.Error:
            continue
        entry = found.setdefault(role, {"count": 0, "rss_bytes": 0, "pids": []})
        entry["count"] += 1
        entry["rss_bytes"] += rss
        entry["pids"].append(pid)
    return found
