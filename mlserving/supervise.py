"""Run the Procfile's processes under supervisord (PyPI `supervisor`), which
restarts any of them that dies:

    python -m mlserving.supervise ingest web worker beat [redis]

writes VAR_DIR/run/supervisord.conf from the Procfile (the one list of
what each role runs) and replaces itself with `supervisord -n`. Ctrl-C or
SIGTERM stops every process, each with SIGTERM first (they drain: the web
workers finish their requests and write their events out) and SIGKILL
after STOP_WAIT_SECONDS. `supervisorctl -c VAR_DIR/run/supervisord.conf
status` shows them; `... restart web` restarts one.

The web role runs WEB_WORKERS times (web:web_0, web:web_1, ...; each
worker binds the port with SO_REUSEPORT, mlserving/serve.py); supervisord
restarts any of them, the ingest process, the Celery worker and beat, and
the embedded Redis. A worker whose supervisord died exits
(mlserving/front.py). Why supervisord: README, "Running in production".
"""

import os
import shlex
import sys
from pathlib import Path

from mlserving.redis_url import short_socket_path

ROOT = Path(__file__).resolve().parent.parent
# Seconds a process may take to stop after SIGTERM before SIGKILL.
STOP_WAIT_SECONDS = 30
# Started in this order (supervisord's priority: lower first).
PRIORITY = {"redis": 10, "ingest": 20}
# Roles run as several processes: the environment variable with the count,
# and its default.
SCALED = {"web": ("WEB_WORKERS", 2)}


def procfile_read(path: Path) -> dict[str, str]:
    """{role: command} of a Procfile (comments and blank lines skipped)."""
    roles = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        role, _, command = line.partition(":")
        roles[role.strip()] = command.strip()
    return roles


def _program(role: str, command: str, workdir: Path, processes: int) -> str:
    # sh expands the Procfile's ${NAME:-default}s; exec keeps one process.
    shell = shlex.quote(f"exec {command}").replace("%", "%%")
    return f"""
[program:{role}]
command=/bin/sh -c {shell}
process_name=%(program_name)s{"_%(process_num)s" if processes > 1 else ""}
numprocs={processes}
directory={workdir}
priority={PRIORITY.get(role, 30)}
autostart=true
autorestart=true
startsecs=1
startretries=10
stopsignal=TERM
stopwaitsecs={STOP_WAIT_SECONDS}
stopasgroup=false
killasgroup=true
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
"""


def processes_of(role: str, environ) -> int:
    """How many processes a role runs (WEB_WORKERS for web, else 1)."""
    name, default = SCALED.get(role, (None, 1))
    value = environ.get(name, "") if name else ""
    try:
        count = int(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be at least 1; got {count}")
    return count


def config(
    roles: list[str], *, procfile: Path, workdir: Path, run_dir: Path, environ=None
) -> str:
    """supervisord's configuration for `roles` of `procfile`. ValueError
    for a role the Procfile does not have, or a bad process count."""
    environ = os.environ if environ is None else environ
    commands = procfile_read(procfile)
    unknown = [role for role in roles if role not in commands]
    if unknown:
        raise ValueError(f"not in {procfile}: {', '.join(unknown)}")
    socket = short_socket_path(run_dir / "supervisor.sock", "supervisor")
    parts = [
        f"""[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile={run_dir / "supervisord.pid"}
loglevel=info

[unix_http_server]
file={socket}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}
"""
    ]
    parts += [
        _program(role, commands[role], workdir, processes_of(role, environ))
        for role in roles
    ]
    return "".join(parts)


def main(argv: list[str]) -> None:
    roles = argv or ["ingest", "web", "worker", "beat"]
    var_dir = Path(os.environ.get("VAR_DIR", "var"))
    if not var_dir.is_absolute():
        var_dir = ROOT / var_dir
    run_dir = var_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "supervisord.conf"
    try:
        text = config(roles, procfile=ROOT / "Procfile", workdir=ROOT, run_dir=run_dir)
    except ValueError as exc:
        sys.exit(f"supervise: {exc}")
    path.write_text(text)
    supervisord = Path(sys.executable).with_name("supervisord")
    os.execv(str(supervisord), [str(supervisord), "-n", "-c", str(path)])


if __name__ == "__main__":
    main(sys.argv[1:])
