#!/usr/bin/env bash
# Sets up and runs the whole system on one port (HTTP and websockets,
# uvicorn, default 8000), the event ingest process, a Celery worker and
# beat, and - when REDIS_URL is not set - the project's own Redis on a unix
# socket under var/. Every process runs under supervisord, which restarts
# one that dies; Ctrl-C stops them all. Needs only python3.11. Configure
# with environment variables or .env.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh requirements.txt

python manage.py migrate --noinput -v0
python manage.py sync_artifacts
# versions registered from pickles by an older release get their skops copy
python manage.py compile_versions >/dev/null ||
  echo "run.sh: some versions could not be converted (manage.py compile_versions)" >&2
python manage.py bootstrap_demo
python manage.py collectstatic --noinput -v0

roles="ingest web worker beat"
if python -m mlserving.embedded_redis --needed; then
  roles="redis $roles"
fi
echo "run.sh: starting $roles under supervisord" >&2
echo "run.sh: http://${HOST:-127.0.0.1}:${WEB_PORT:-8000}/  (API docs at /docs, admin at /admin/)" >&2
# Prometheus counters of an earlier run would be summed with this one.
rm -rf "${PROMETHEUS_MULTIPROC_DIR:-${VAR_DIR:-var}/prometheus}"
exec python -m mlserving.supervise $roles
