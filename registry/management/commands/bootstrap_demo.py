import sys

from django.core.management.base import BaseCommand, CommandError

from registry.demo import demo_bootstrap


class Command(BaseCommand):
    help = (
        "Train two demo versions (v1.0 LogisticRegression, v2.0 "
        "RandomForest) of a 10-feature classifier, register them and "
        "activate v1.0. Does nothing when the registry has models."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, seed, **options):
        def log(line: str) -> None:
            print(f"bootstrap_demo: {line}", file=sys.stderr, flush=True)

        report = demo_bootstrap(seed=seed, log=log)
        if report is not None and report.failed:
            raise CommandError("; ".join(report.failed))
