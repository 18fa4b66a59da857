import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mlserving.errors import ApplicationError
from registry import artifacts, services


class Command(BaseCommand):
    help = (
        "Register an artifact file as a new version. A file outside "
        "ARTIFACTS_ROOT is copied into <root>/<name>/<version>/."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (print Django's version) would shadow the
        # model version option the seed's workflow needs.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--name", required=True, help="Model name.")
        parser.add_argument("--version", required=True, dest="model_version")
        parser.add_argument(
            "--metadata",
            type=Path,
            help="Metadata JSON (default: the seed's file beside PATH).",
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--activate", action="store_true")

    def handle(self, *args, path, name, model_version, **options):
        if options["metadata"]:
            try:
                metadata = json.loads(options["metadata"].read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"metadata: {exc}") from None
        else:
            metadata, error = artifacts.read_metadata(path)
            if error:
                raise CommandError(f"metadata: {error}")
        try:
            version = services.model_version_register(
                model_name=name,
                version=model_version,
                source=path,
                metadata=metadata,
                description=options["description"],
            )
            self.stdout.write(
                f"registered {version} ({version.model_type}, "
                f"{version.n_features} features, sha256 {version.sha256})"
            )
            if options["activate"]:
                services.model_version_activate(
                    version=version, actor="register_model", note="--activate"
                )
                self.stdout.write(f"activated {version}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
