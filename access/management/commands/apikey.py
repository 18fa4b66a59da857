"""manage.py apikey {create|list|revoke}: API keys from the command line
(the admin has the same under "API keys")."""

from access import services
from access.models import Scope
from mlserving.commands import EXIT_STATUS_HELP, ScriptableCommand, json_flag


class Command(ScriptableCommand):
    help = (
        "Create, list or revoke API keys. A key's secret is printed once, "
        "at creation; only its hash is stored. Scopes: predict "
        "(predictions and reads) and write (also activate, rollback, "
        "aliases, experiments, uploads). 3: unknown prefix; 5: an invalid "
        "name, scope or expiry."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{create,list,revoke}"
        )
        create = actions.add_parser(
            "create", help="Create a key named NAME.", epilog=EXIT_STATUS_HELP
        )
        create.add_argument("name", metavar="NAME")
        create.add_argument(
            "--scope", choices=Scope.values, default=Scope.PREDICT.value
        )
        create.add_argument(
            "--expires-in-days", type=float, default=None, dest="expires_in_days"
        )
        list_ = actions.add_parser("list", help="Every key.", epilog=EXIT_STATUS_HELP)
        revoke = actions.add_parser(
            "revoke",
            help="Revoke the key whose secret starts with PREFIX.",
            epilog=EXIT_STATUS_HELP,
        )
        revoke.add_argument("prefix", metavar="PREFIX")
        for sub in (create, list_, revoke):
            json_flag(sub, subparser=True)

    def run(self, *, action, **options) -> dict:
        if action == "create":
            api_key, secret = services.key_create(
                name=options["name"],
                scope=options["scope"],
                expires_in_days=options["expires_in_days"],
            )
            return {"key": secret, **services.key_body(api_key)}
        if action == "revoke":
            api_key, changed = services.key_revoke(prefix=options["prefix"])
            return {**services.key_body(api_key), "changed": changed}
        return {"keys": [services.key_body(k) for k in services.key_list()]}

    def render(self, result: dict) -> str:
        if "key" in result:
            return (
                f"{result['key']}\n"
                f"(API key {result['name']!r}, scope {result['scope']}; shown "
                "once: only its hash is stored)"
            )
        if "changed" in result:
            state = "revoked" if result["changed"] else "was already revoked"
            return f"API key {result['prefix']} ({result['name']}) {state}"
        lines = [
            f"{k['prefix']}  {k['scope']:<7}  "
            f"{'usable' if k['usable'] else 'revoked/expired':<15}  {k['name']}"
            for k in result["keys"]
        ]
        return "\n".join(lines) or "no API keys"
