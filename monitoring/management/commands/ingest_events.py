from django.core.management.base import BaseCommand, CommandError

from monitoring.ingest import ingest_serve, socket_path
from monitoring.roles import role_register


class Command(BaseCommand):
    help = (
        "Run the event ingest process: web processes on this host hand it "
        "their prediction events over EVENT_INGEST_SOCKET and it writes "
        "them to the database. Stops on SIGTERM or SIGINT after the "
        "batches in hand are committed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--socket", help="Listen here instead of EVENT_INGEST_SOCKET."
        )

    def handle(self, *args, socket=None, **options):
        path = socket or socket_path()
        if not path:
            raise CommandError("EVENT_INGEST_SOCKET is blank: ingest is off")
        role_register("ingest")

        def ready():
            self.stdout.write(f"ingest: listening on {path}")
            self.stdout.flush()

        try:
            server = ingest_serve(path, ready=ready)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"ingest: stopped; {server.stored} events stored, "
            f"{server.failures} failed inserts"
        )
