"""The image's HEALTHCHECK: exit 0 when this container's web worker answers
GET /v2/health/live with 200, else 1.

Liveness, not readiness: a worker whose database is down is alive and
comes back by itself; restarting it would not help. The request carries
`Host: localhost` because Django checks the Host header against
ALLOWED_HOSTS, so ALLOWED_HOSTS must include localhost. Standard library
only: it starts a fresh interpreter every interval.
"""

import os
import sys
import urllib.error
import urllib.request

PATH = "/v2/health/live"
TIMEOUT_SECONDS = 2.0


def main() -> int:
    port = os.environ.get("WEB_PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", headers={"Host": "localhost"}
    )
    # No proxy: an http_proxy in the environment must not route loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:  # refused (still warming up), timeout
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {PATH} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
