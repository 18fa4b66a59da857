"""manage.py activate MODEL VERSION [--note TEXT] [--json]: what
POST /models/{version}/activate does, from the command line."""

from mlserving.commands import ScriptableCommand
from registry import selectors, services
from registry.serializers import AliasChangeSerializer

ACTOR = "cli:activate"


class Command(ScriptableCommand):
    help = (
        "Make VERSION the active version of MODEL (its default alias) "
        "after checking its artifact; recorded in the alias history as "
        f"{ACTOR}. Activating the active version changes nothing (0). "
        "3: unknown model or version; 4: archived; 5: the artifact fails "
        "its integrity or load check (nothing moves)."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", metavar="MODEL")
        parser.add_argument("version_name", metavar="VERSION")
        parser.add_argument("--note", default="", help="Kept in the history.")

    def run(self, *, model, version_name, note="", **options) -> dict:
        registered = selectors.model_get(name=model)
        target = selectors.model_version_get(model=registered, version=version_name)
        change = services.model_version_activate(version=target, actor=ACTOR, note=note)
        # The body of POST /models/{version}/activate.
        return {
            "status": "activated" if change else "unchanged",
            "model": registered.name,
            "active_version": target.version,
            "previous_version": change.from_label or None if change else None,
            "change": AliasChangeSerializer(change).data if change else None,
        }

    def render(self, result: dict) -> str:
        if result["change"] is None:
            return f"{result['model']}:{result['active_version']} was already active."
        return (
            f"{result['model']}: {result['previous_version'] or '-'} -> "
            f"{result['active_version']} is now active."
        )
