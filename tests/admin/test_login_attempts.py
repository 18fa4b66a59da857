"""Admin login attempts are limited (django-axes, counted in Redis through
the shared cache): after AXES_FAILURE_LIMIT wrong passwords for one
username from one address, that pair is refused (429), even with the right
password, until the cool-off ends or the count is reset; when Redis is
unreachable, logins still work. Driven through the real login URL."""

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from axes.handlers.proxy import AxesProxyHandler
from axes.utils import reset as axes_reset
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import AsyncClient, Client

from mlserving import login_attempts

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "right-password-for-tests"
# Redis is shared (by every test run on this checkout, and with REDIS_URL
# by other checkouts): a name no other test logs in with.
USER = "axes-ops"
HOME = "10.1.2.3"
# Every address these tests log in from (the ASGI client's is 127.0.0.1).
ADDRESSES = (HOME, "10.9.9.9", "127.0.0.1")


@pytest.fixture
def staff(db, redis_service):
    """A staff user, and no login failures on record for it."""
    login_attempts.reset()
    AxesProxyHandler.get_implementation(force=True)
    user = get_user_model().objects.create_user(
        username=USER, password=PASSWORD, is_staff=True
    )
    for ip in ADDRESSES:
        axes_reset(username=USER, ip=ip)
    yield user
    # after any test's own CACHES (settings are restored before this runs)
    login_attempts.reset()
    AxesProxyHandler.get_implementation(force=True)
    for ip in ADDRESSES:
        axes_reset(username=USER, ip=ip)


def log_in(password: str, *, username: str = USER, ip: str = HOME):
    """POST the admin login form from `ip` with a fresh client."""
    client = Client(REMOTE_ADDR=ip)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response, client


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_five_failures_lock_out_the_pair_even_with_the_right_password(staff):
    assert django_settings.AXES_FAILURE_LIMIT == 5
    # given: four wrong passwords, each answered with the form again
    for _ in range(4):
        response, _ = log_in("wrong")
        assert response.status_code == 200
        assert "Please enter the correct username" in response.content.decode()
    # when: the fifth
    response, _ = log_in("wrong")
    # then: locked out
    assert response.status_code == 429
    assert "too many" in response.content.decode().lower()
    # and: the right password from there is refused too, with no session
    response, client = log_in(PASSWORD)
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302  # back to the login page
    # but: the same user from another address, and another user from this
    # one, are not locked out (the pair is)
    assert logged_in(log_in(PASSWORD, ip="10.9.9.9")[0])
    get_user_model().objects.create_user(username="axes-dev", password=PASSWORD)
    response, _ = log_in(PASSWORD, username="axes-dev")
    assert response.status_code == 200  # not staff: the form, not a 429


def test_the_lock_lifts_after_the_cool_off(staff, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    for _ in range(5):
        response, _ = log_in("wrong")
    assert response.status_code == 429
    assert log_in(PASSWORD)[0].status_code == 429
    # when: the cool-off passes (counted from the last attempt)
    time.sleep(1.5)
    # then: the right password works again
    assert logged_in(log_in(PASSWORD)[0])


def test_resetting_the_attempts_lifts_the_lock(staff):
    for _ in range(5):
        log_in("wrong")
    assert log_in(PASSWORD)[0].status_code == 429
    # when: an operator clears the pair with axes' command (its API,
    # axes.utils.reset(ip=, username=), underneath). Only the pair's own
    # reset finds the count: it is stored per username and address, so
    # axes_reset_username alone would not.
    out = io.StringIO()
    call_command("axes_reset_ip_username", HOME, USER, stdout=out)
    assert out.getvalue().strip() == "1 attempts removed."
    # then
    assert logged_in(log_in(PASSWORD)[0])


def test_a_success_clears_the_earlier_failures(staff):
    for _ in range(4):
        log_in("wrong")
    assert logged_in(log_in(PASSWORD)[0])
    # four more failures do not lock: the count started again
    for _ in range(4):
        assert log_in("wrong")[0].status_code == 200


def test_the_count_is_shared_with_other_processes(staff):
    # given: three failures counted here
    for _ in range(3):
        log_in("wrong")
    # when: another process (another worker or host) asks axes for the
    # pair's failures
    code = (
        "import django; django.setup(); "
        "from django.test import RequestFactory; "
        "from axes.handlers.proxy import AxesProxyHandler; "
        f"r = RequestFactory().post('/admin/login/', REMOTE_ADDR={HOME!r}); "
        "AxesProxyHandler.update_request(r); "
        f"print(AxesProxyHandler.get_failures(r, {{'username': {USER!r}}}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": django_settings.REDIS_URL,
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then: it sees the same three
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == 3


@pytest.fixture
def hung_redis():
    """A TCP server that accepts connections and never answers: Redis that
    hangs (each command waits for CACHES' SOCKET_TIMEOUT)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def redis_at(settings, url: str) -> None:
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    login_attempts.reset()
    AxesProxyHandler.get_implementation(force=True)


@pytest.mark.parametrize("redis", ["refused", "hung"])
def test_admin_login_works_while_redis_is_unreachable(
    staff, settings, caplog, hung_redis, redis
):
    # given: Redis refuses connections, or accepts and never answers
    redis_at(settings, "redis://127.0.0.1:1/0" if redis == "refused" else hung_redis)
    caplog.set_level(logging.WARNING, logger="mlserving.login_attempts")
    started = time.monotonic()
    # when: six wrong passwords, then the right one
    for _ in range(6):
        assert log_in("wrong")[0].status_code == 200
    response, _ = log_in(PASSWORD)
    elapsed = time.monotonic() - started
    # then: nothing is counted, nobody is locked out, the login works
    assert logged_in(response)
    # one warning, and a hung Redis costs one SOCKET_TIMEOUT (0.25 s), not
    # one per cache call: it is not asked again for a few seconds
    warnings = [r for r in caplog.records if r.name == "mlserving.login_attempts"]
    assert len(warnings) == 1
    assert "not limited" in warnings[0].getMessage()
    assert elapsed < 2.0, elapsed


def test_the_lockout_holds_on_the_asgi_path_the_servers_run(staff):
    # The web processes serve Django through ASGI, where axes' middleware
    # takes its async branch: the same lockout there.
    # (its requests come from 127.0.0.1: the ASGI scope's client)
    client = AsyncClient()

    def post(password: str):
        form = {"username": USER, "password": password}
        return async_to_sync(client.post)(LOGIN, form)

    statuses = [post("wrong").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert post(PASSWORD).status_code == 429
