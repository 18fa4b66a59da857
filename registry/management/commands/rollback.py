"""manage.py rollback MODEL [--note TEXT] [--json]: what
POST /models/rollback does, from the command line."""

from mlserving.commands import ScriptableCommand
from registry import selectors, services
from registry.serializers import AliasChangeSerializer

ACTOR = "cli:rollback"


class Command(ScriptableCommand):
    help = (
        "Return MODEL to the version active before its last activation "
        "(skipping versions that can no longer be served); recorded in the "
        f"alias history as {ACTOR}. 3: unknown model; 4: no earlier "
        "version to return to."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", metavar="MODEL")
        parser.add_argument("--note", default="", help="Kept in the history.")

    def run(self, *, model, note="", **options) -> dict:
        registered = selectors.model_get(name=model)
        change = services.model_rollback(model=registered, actor=ACTOR, note=note)
        # The body of POST /models/rollback.
        return {
            "status": "rolled_back",
            "model": registered.name,
            "active_version": change.to_label,
            "previous_version": change.from_label or None,
            "change": AliasChangeSerializer(change).data,
        }

    def render(self, result: dict) -> str:
        return (
            f"{result['model']} rolled back: {result['previous_version'] or '-'} "
            f"-> {result['active_version']}."
        )
