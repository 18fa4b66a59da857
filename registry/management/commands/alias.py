"""manage.py alias {set|remove|list}: a model's named pointers to its
versions (champion, challenger, ...), from the command line."""

from mlserving.commands import EXIT_STATUS_HELP, ScriptableCommand, json_flag
from registry import selectors, services
from registry.serializers import alias_body

ACTOR = "cli:alias"


class Command(ScriptableCommand):
    help = (
        "Set, remove or list a model's aliases. `set` creates or moves one "
        "(the default alias, production, is an activation); `remove` "
        "deletes one (never the default alias: 4); every move is recorded "
        f"in the alias history as {ACTOR}. 3: unknown model, version or "
        "alias; 5: an invalid alias name or a version that cannot be served."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{set,remove,list}"
        )
        set_ = actions.add_parser(
            "set",
            help="Point ALIAS of MODEL at VERSION.",
            epilog=EXIT_STATUS_HELP,
        )
        set_.add_argument("model", metavar="MODEL")
        set_.add_argument("alias", metavar="ALIAS")
        set_.add_argument("version_name", metavar="VERSION")
        set_.add_argument("--note", default="", help="Kept in the history.")
        remove = actions.add_parser(
            "remove", help="Delete ALIAS of MODEL.", epilog=EXIT_STATUS_HELP
        )
        remove.add_argument("model", metavar="MODEL")
        remove.add_argument("alias", metavar="ALIAS")
        remove.add_argument("--note", default="", help="Kept in the history.")
        list_ = actions.add_parser(
            "list", help="MODEL's aliases and their versions.", epilog=EXIT_STATUS_HELP
        )
        list_.add_argument("model", metavar="MODEL")
        for sub in (set_, remove, list_):
            json_flag(sub, subparser=True)

    def run(self, *, action, model, **options) -> dict:
        registered = selectors.model_get(name=model)
        if action == "set":
            target = selectors.model_version_get(
                model=registered, version=options["version_name"]
            )
            change = services.model_alias_set(
                version=target,
                alias=options["alias"],
                actor=ACTOR,
                note=options["note"],
            )
            return alias_body(
                change,
                model=registered.name,
                alias=options["alias"],
                version=target.version,
            )
        if action == "remove":
            change = services.model_alias_remove(
                model=registered,
                alias=options["alias"],
                actor=ACTOR,
                note=options["note"],
            )
            return alias_body(
                change, model=registered.name, alias=options["alias"], version=None
            )
        return {
            "model": registered.name,
            "default_alias": selectors.alias_name(),
            "aliases": selectors.model_aliases(model=registered),
        }

    def render(self, result: dict) -> str:
        if "aliases" in result:
            if not result["aliases"]:
                return f"{result['model']} has no aliases."
            width = max(len(alias) for alias in result["aliases"])
            return "\n".join(
                f"{alias.ljust(width)}  {version}"
                + ("  (default)" if alias == result["default_alias"] else "")
                for alias, version in result["aliases"].items()
            )
        label = f"{result['model']}@{result['alias']}"
        if result["version"] is None:
            return f"{label} removed (was {result['previous_version']})."
        if result["change"] is None:
            return f"{label} already pointed at {result['version']}."
        return f"{label}: {result['previous_version'] or '-'} -> {result['version']}."
