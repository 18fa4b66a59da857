from django.core.management.base import BaseCommand, CommandError

from registry.services import artifacts_verify


class Command(BaseCommand):
    help = "Check every version's artifact against its sha256 and load it."

    def handle(self, *args, **options):
        report = artifacts_verify()
        for label, status, detail in report:
            line = f"{status:<17} {label}" + (f": {detail}" if detail else "")
            self.stdout.write(line)
        if any(status != "ready" for _, status, _ in report):
            raise CommandError("some artifacts failed verification")
