"""Secure by default: the browser-side settings (security headers, cookie
flags, SSL redirect, HSTS) come from the environment, are strict with
DEBUG off and relaxed with DEBUG on; `manage.py check --deploy` is clean
with production settings; health probes still answer over plain HTTP;
the dashboard carries its Content-Security-Policy."""

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from monitoring.views import dashboard_csp

ROOT = Path(__file__).resolve().parent.parent
SECURITY_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "AXES_FAILURE_LIMIT",
    "AXES_COOLOFF_TIME",
]
SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; "
    f"names = {SECURITY_SETTINGS!r}; "
    "print(json.dumps({n: getattr(s, n) for n in names}, default=str))"
)


def production_env(tmp_path) -> dict:
    """DEBUG off with exactly what production must set, nothing else."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mlserving.settings",
        "VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "ml.example.com",
        "DATABASE_URL": "postgres://mlserving:change-me@127.0.0.1:5432/mlserving",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def settings_with(env: dict) -> dict:
    result = run([sys.executable, "-c", SHOW_SETTINGS], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    # when
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        production_env(tmp_path),
    )
    # then: not one warning, and none silenced
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_warns_when_a_default_is_turned_off(tmp_path):
    # the check above can fail: HSTS off is reported
    env = {**production_env(tmp_path), "SECURE_HSTS_SECONDS": "0"}
    result = run([sys.executable, "manage.py", "check", "--deploy"], env)
    assert "security.W004" in result.stdout + result.stderr


def test_production_defaults_are_secure(tmp_path):
    values = settings_with(production_env(tmp_path))
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": [
            "^health$",
            "^v2/health/",
            "^metrics/prometheus$",
        ],
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": None,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
        "AXES_FAILURE_LIMIT": 5,
        "AXES_COOLOFF_TIME": "0:15:00",
    }


def test_development_defaults_are_relaxed(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mlserving.settings",
        "VAR_DIR": str(tmp_path / "var"),
    }
    values = settings_with(env)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CSRF_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"),
    [
        ("SECURE_SSL_REDIRECT", "false", "SECURE_SSL_REDIRECT", False),
        ("SECURE_HSTS_SECONDS", "3600", "SECURE_HSTS_SECONDS", 3600),
        (
            "SECURE_HSTS_INCLUDE_SUBDOMAINS",
            "false",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS",
            False,
        ),
        ("SECURE_HSTS_PRELOAD", "false", "SECURE_HSTS_PRELOAD", False),
        (
            "SECURE_PROXY_SSL_HEADER",
            "X-Forwarded-Proto",
            "SECURE_PROXY_SSL_HEADER",
            ["HTTP_X_FORWARDED_PROTO", "https"],
        ),
        (
            "SECURE_PROXY_SSL_HEADER",
            "X-Forwarded-Ssl:on",
            "SECURE_PROXY_SSL_HEADER",
            ["HTTP_X_FORWARDED_SSL", "on"],
        ),
        ("SESSION_COOKIE_SECURE", "false", "SESSION_COOKIE_SECURE", False),
        ("CSRF_COOKIE_SECURE", "false", "CSRF_COOKIE_SECURE", False),
        ("SESSION_COOKIE_HTTPONLY", "false", "SESSION_COOKIE_HTTPONLY", False),
        ("SESSION_COOKIE_SAMESITE", "strict", "SESSION_COOKIE_SAMESITE", "Strict"),
        ("SESSION_COOKIE_SAMESITE", "false", "SESSION_COOKIE_SAMESITE", False),
        (
            "SECURE_CONTENT_TYPE_NOSNIFF",
            "false",
            "SECURE_CONTENT_TYPE_NOSNIFF",
            False,
        ),
        (
            "SECURE_REFERRER_POLICY",
            "strict-origin-when-cross-origin",
            "SECURE_REFERRER_POLICY",
            "strict-origin-when-cross-origin",
        ),
        ("X_FRAME_OPTIONS", "SAMEORIGIN", "X_FRAME_OPTIONS", "SAMEORIGIN"),
        ("AXES_FAILURE_LIMIT", "3", "AXES_FAILURE_LIMIT", 3),
        ("AXES_COOLOFF", "0.5", "AXES_COOLOFF_TIME", "0:00:30"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_variable_changes_its_setting(
    tmp_path, variable, value, setting, expected
):
    # given: production settings, where every default is the secure one
    env = production_env(tmp_path)
    default = settings_with(env)[setting]
    assert default != expected
    # when: the variable is set
    values = settings_with({**env, variable: value})
    # then: its setting follows it
    assert values[setting] == expected


def test_a_samesite_value_browsers_do_not_know_is_refused(tmp_path):
    env = {**production_env(tmp_path), "SESSION_COOKIE_SAMESITE": "sometimes"}
    result = run([sys.executable, "-c", SHOW_SETTINGS], env)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SAMESITE" in result.stderr


# --- the redirect, the exemptions and the headers, through Django ---------


@pytest.fixture
def https_only(settings, db):
    """Production's redirect and HSTS on the test server, behind a proxy
    that says X-Forwarded-Proto: https. The security middleware reads its
    settings once, so each test gets a new client."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return Client()


def test_plain_http_is_redirected_to_https(https_only):
    response = https_only.get("/models?model=default")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/models?model=default"


@pytest.mark.parametrize(
    "path", ["/health", "/v2/health/live", "/v2/health/ready", "/metrics/prometheus"]
)
def test_probes_and_scrapes_answer_over_plain_http(https_only, path):
    response = https_only.get(path)
    # answered here (200, or 503 when not ready), never sent to https
    assert response.status_code in (200, 503), response.content
    assert "Strict-Transport-Security" not in response


def test_https_through_the_proxy_gets_hsts_and_the_headers(https_only):
    response = https_only.get("/v2", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_session_and_csrf_cookies_are_secure_in_production(settings, db):
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    csrf = response.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Lax"
    assert response["X-Frame-Options"] == "DENY"


# --- the dashboard's Content-Security-Policy -------------------------------


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_the_dashboard_has_a_strict_content_security_policy(client, db):
    response = client.get("/")
    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self'",
        # the page's own origin serves the websocket
        "connect-src": "'self' ws://testserver",
        "object-src": "'none'",
        "frame-ancestors": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
    }
    # and the page needs nothing more: no inline script or style
    page = response.content.decode()
    assert "<script>" not in page and "<style" not in page and "style=" not in page


def test_the_policy_allows_a_websocket_elsewhere(client, db, settings):
    settings.MONITORING = {
        **settings.MONITORING,
        "WEBSOCKET_URL": "wss://live.example.com:8443/ws/metrics/",
    }
    policy = directives(client.get("/")["Content-Security-Policy"])
    assert policy["connect-src"] == "'self' wss://live.example.com:8443"


def test_a_policy_never_takes_anything_but_a_websocket_origin():
    assert "connect-src 'self';" in dashboard_csp("javascript:alert(1)")
    assert "connect-src 'self' wss://h:1;" in dashboard_csp("wss://h:1/ws/?a=b")
