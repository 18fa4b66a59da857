"""The base of the management commands operators script with.

Each such command prints a readable answer, or with `--json` exactly one
JSON object on stdout: the result, or `{"error": {"code", "message",
"details"}}` (the shape of the HTTP API's errors). Its exit status says
what happened without parsing anything:

    0  done, or it already was so (nothing to change)
    1  any other failure
    2  bad usage (argparse's own message on stderr)
    3  not found (what the HTTP API answers with 404)
    4  conflict (409)
    5  refused or invalid (400, 413, 422)

The kernel may import only Django, mlserving.errors and the standard
library: the commands built on it live in the apps.
"""

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from mlserving.errors import ApplicationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_REFUSED = 5

EXIT_STATUS_HELP = (
    "Exit status: 0 done (or already so), 1 other failure, 2 bad usage, "
    "3 not found, 4 conflict, 5 refused or invalid. With --json, stdout "
    'holds one JSON object: the result, or {"error": {"code", "message", '
    '"details"}}.'
)

_EXIT_BY_HTTP_STATUS = {
    400: EXIT_REFUSED,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
    413: EXIT_REFUSED,
    422: EXIT_REFUSED,
}


def exit_status_of(error: ApplicationError) -> int:
    """The exit status for an error a client may see: by its HTTP status,
    EXIT_FAILED for any status without a status of its own."""
    return _EXIT_BY_HTTP_STATUS.get(error.status_code, EXIT_FAILED)


def json_flag(parser: argparse.ArgumentParser, *, subparser: bool = False) -> None:
    """Add --json to `parser`. On a subcommand's parser it sets the flag
    only when given, so `cmd --json sub` and `cmd sub --json` both work."""
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if subparser else False,
        help="Print one JSON object on stdout (the result or the error).",
    )


class ScriptableCommand(BaseCommand):
    """A command with --json and the exit statuses above.

    Subclasses implement `run(**options) -> dict` (the JSON result; raise
    ApplicationError subclasses on failure) and `render(result) -> str`
    (the human answer). A raised ApplicationError becomes the error object
    or a one-line message on stderr, and its exit status; anything else
    exits 1, after the error object when --json was given.
    """

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("epilog", EXIT_STATUS_HELP)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        json_flag(parser)
        return parser

    def run(self, **options) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, result: dict[str, Any]) -> str:
        return json.dumps(result, indent=2, cls=DjangoJSONEncoder)

    def handle(self, *args, **options):
        as_json = options.get("json", False)
        try:
            result = self.run(**options)
        except ApplicationError as exc:
            if as_json:
                self._write_json(
                    {
                        "error": {
                            "code": exc.code,
                            "message": exc.message,
                            "details": exc.details,
                        }
                    }
                )
            # Django prints "CommandError: <message>" on stderr and exits
            # with `returncode` (call_command raises it instead).
            raise CommandError(
                f"{exc.message} ({exc.code})", returncode=exit_status_of(exc)
            ) from exc
        except CommandError as exc:
            if as_json:
                self._write_json(
                    {"error": {"code": "failed", "message": str(exc), "details": {}}}
                )
            raise
        except Exception as exc:
            if as_json:
                self._write_json(
                    {
                        "error": {
                            "code": "internal_error",
                            "message": f"{type(exc).__name__}: {exc}",
                            "details": {},
                        }
                    }
                )
            raise  # the traceback on stderr; Python exits 1
        if as_json:
            self._write_json(result)
        else:
            self.stdout.write(self.render(result))

    def _write_json(self, value: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(value, cls=DjangoJSONEncoder))
