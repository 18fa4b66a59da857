#!/usr/bin/env bash
# The image's entrypoint: runs one role per container.
#
#   entrypoint.sh web|websockets|ingest|worker|beat [extra args]
#       exec the Procfile's command for the role (websockets: the web
#       command; the same ASGI app serves /ws/). The command is read from
#       the Procfile, as mlserving/supervise.py reads it, so the Procfile
#       stays the one list of what each role runs.
#   entrypoint.sh migrate
#       the one-shot deploy job: migrate, register the artifacts, convert
#       old pickled versions (what run.sh does before it starts the roles).
#   entrypoint.sh manage COMMAND [args]
#       any manage.py command (createsuperuser, models, activate, ...).
#
# In a container the platform is the supervisor (a restart policy, a
# Deployment), so each role runs once per container and is scaled with
# containers, not with WEB_WORKERS.
set -euo pipefail
cd "$(dirname "$0")/.."

procfile_command() {
  # `role: command` lines; mlserving/supervise.py's procfile_read.
  sed -n "s/^$1:[[:space:]]*//p" Procfile | tail -n 1
}

run_role() {
  local role=$1 command
  shift
  command=$(procfile_command "$role")
  if [ -z "$command" ]; then
    echo "entrypoint: the Procfile has no '$role' role" >&2
    exit 64
  fi
  # sh expands the Procfile's ${NAME:-default}s, as under supervisord; the
  # extra arguments follow the command.
  exec sh -c "exec $command \"\$@\"" "$role" "$@"
}

role=${1:-web}
if [ $# -gt 0 ]; then shift; fi

case "$role" in
  web | websockets)
    # Counters of this container's previous run would be summed with this
    # one's (a restarted compose container keeps its files); run.sh does
    # the same.
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:-${VAR_DIR:-var}/prometheus}"
    run_role web "$@"
    ;;
  ingest | worker | beat)
    run_role "$role" "$@"
    ;;
  migrate)
    python manage.py migrate --noinput
    python manage.py sync_artifacts
    # as in run.sh: a version that cannot be converted is reported, and
    # must not stop the deploy
    python manage.py compile_versions >/dev/null ||
      echo "entrypoint: some versions could not be converted (manage.py compile_versions)" >&2
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    echo "entrypoint: unknown role '$role' (web, websockets, ingest, worker, beat, migrate, manage)" >&2
    exit 64
    ;;
esac
