from django.core.management.base import BaseCommand, CommandError

from mlserving.errors import ApplicationError
from registry.models import ModelVersion
from registry.services import model_version_compile


class Command(BaseCommand):
    help = (
        "Make the serving forms of versions registered before they existed: "
        "the skops copy of a version registered from a pickle (no server "
        "process unpickles; this command does, on the server's own files) "
        "and the ONNX conversion (again for every version with --force); "
        "each is served by ONNX Runtime only if its conversion validates."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="Only this model's versions.")
        parser.add_argument(
            "--force", action="store_true", help="Convert compiled versions again."
        )

    def handle(self, *args, model=None, force=False, **options):
        versions = ModelVersion.objects.exclude(
            status=ModelVersion.Status.ARCHIVED
        ).select_related("model")
        if model:
            versions = versions.filter(model__name=model)
        failed = False
        for version in versions:
            try:
                model_version_compile(version=version, force=force)
            except ApplicationError as exc:
                failed = True
                self.stdout.write(f"failed    {version}: {exc.message}")
                continue
            self.stdout.write(
                f"{version.serving_runtime:<9} {version}: {version.compiled_detail}"
            )
        if failed:
            raise CommandError("some versions could not be read")
