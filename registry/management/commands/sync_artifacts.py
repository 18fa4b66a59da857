from django.core.management.base import BaseCommand

from registry.services import artifacts_sync


class Command(BaseCommand):
    help = (
        "Register artifacts in the seed's convention (artifacts/"
        "model_<version>.pkl beside its metadata JSON) that the registry "
        "does not know yet, and activate DEFAULT_MODEL_VERSION if nothing "
        "is active."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", help="Register under this model (default: DEFAULT_MODEL_NAME)."
        )

    def handle(self, *args, model=None, **options):
        report = artifacts_sync(model_name=model)
        for label in report.registered:
            self.stdout.write(f"registered {label}")
        for label in report.unchanged:
            self.stdout.write(f"unchanged  {label}")
        for label in report.changed:
            self.stderr.write(
                f"CHANGED    {label}: the file no longer matches the "
                "registered sha256; it will not be served"
            )
        for failure in report.failed:
            self.stderr.write(f"failed     {failure}")
        if report.activated:
            self.stdout.write(f"activated  {report.activated}")
