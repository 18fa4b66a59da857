"""manage.py experiment {start|pause|stop|list}: run, pause or complete a
model's A/B experiment, or list them, from the command line."""

from experiments import selectors, services
from experiments.models import Experiment
from mlserving.commands import EXIT_STATUS_HELP, ScriptableCommand, json_flag
from mlserving.errors import NotFound
from registry import selectors as registry_selectors

ACTIONS = {
    "start": services.experiment_start,
    "pause": services.experiment_pause,
    "stop": services.experiment_stop,
}


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


def experiment_result(experiment: Experiment) -> dict:
    """What the command reports of an experiment: name, model, status,
    strategy and arms (control first)."""
    return {
        "name": experiment.name,
        "model": experiment.model.name,
        "status": experiment.status,
        "strategy": experiment.strategy,
        "started_at": experiment.started_at,
        "stopped_at": experiment.stopped_at,
        "arms": [
            {
                "version": variant.version.version,
                "weight": variant.weight,
                "paused": variant.paused,
            }
            for variant in experiment.variants.select_related("version")
        ],
    }


def _arms_text(arms: list[dict]) -> str:
    return ", ".join(
        f"{arm['version']} {arm['weight']:g}" + (" (paused)" if arm["paused"] else "")
        for arm in arms
    )


class Command(ScriptableCommand):
    help = (
        "start, pause or stop (complete for good) an experiment named by "
        "--name, or the current experiment of --model (the running one, "
        "else the last changed: what /ab-test/status reports); or list "
        "every experiment. The history records the change with the reason "
        "'cli:experiment <action>'. Asking for the status it already has "
        "changes nothing (0). 3: unknown experiment or model, or the model "
        "has none; 4: the model runs another experiment, or it is completed."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{start,pause,stop,list}"
        )
        for action in ACTIONS:
            sub = actions.add_parser(
                action,
                help=f"{action.capitalize()} an experiment.",
                epilog=EXIT_STATUS_HELP,
            )
            which = sub.add_mutually_exclusive_group(required=True)
            which.add_argument("--name", help="The experiment's name.")
            which.add_argument("--model", help="The model's current experiment.")
            sub.add_argument("--reason", default="", help="Kept in the history.")
            json_flag(sub, subparser=True)
        list_ = actions.add_parser(
            "list", help="Every experiment, newest first.", epilog=EXIT_STATUS_HELP
        )
        json_flag(list_, subparser=True)

    def run(self, *, action, **options) -> dict:
        if action == "list":
            experiments = Experiment.objects.select_related("model")
            return {"experiments": [experiment_result(e) for e in experiments]}
        experiment = self._find(name=options["name"], model=options["model"])
        before = experiment.status
        reason = f"cli:experiment {action}"
        if options["reason"]:
            reason = f"{reason}: {options['reason']}"
        experiment = ACTIONS[action](experiment=experiment, reason=reason)
        return {
            "changed": experiment.status != before,
            "previous_status": before,
            "experiment": experiment_result(experiment),
        }

    def _find(self, *, name: str | None, model: str | None) -> Experiment:
        if name:
            experiment = (
                Experiment.objects.select_related("model").filter(name=name).first()
            )
            if experiment is None:
                raise ExperimentNotFound(
                    f"No experiment named {name!r}.", details={"experiment": name}
                )
            return experiment
        registered = registry_selectors.model_get(name=model)
        experiment = selectors.experiment_get_current(model_name=registered.name)
        if experiment is None:
            raise ExperimentNotFound(
                f"Model {registered.name!r} has no experiment.",
                details={"model": registered.name},
            )
        return experiment

    def render(self, result: dict) -> str:
        if "experiments" in result:
            if not result["experiments"]:
                return "No experiments."
            return "\n".join(
                f"{e['name']}  {e['model']}  {e['status']}  {_arms_text(e['arms'])}"
                for e in result["experiments"]
            )
        e = result["experiment"]
        if not result["changed"]:
            return f"{e['name']} ({e['model']}) was already {e['status']}."
        return (
            f"{e['name']} ({e['model']}): {result['previous_status']} -> "
            f"{e['status']}; arms {_arms_text(e['arms'])}."
        )
