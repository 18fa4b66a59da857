"""Chromium under Playwright for the dashboard tests: the Debian build at
/usr/bin/chromium (never `playwright install`), with every request that
leaves 127.0.0.1 aborted and recorded."""

import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture
def browser(transactional_db):
    """Chromium for one test. Playwright's sync API keeps an asyncio loop
    running on this thread while it is open, where Django refuses database
    calls: so it starts after the test database is set up and stops before
    it is flushed, and tests call Django through in_thread()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


class Page:
    """A page plus what it tried to fetch off this machine, the JavaScript
    errors it raised and the Content-Security-Policy violations it
    reported (the console's, and the securitypolicyviolation events')."""

    def __init__(self, page, outside: list[str], errors: list[str], csp: list[str]):
        self.page = page
        self.outside = outside
        self.errors = errors
        self.csp = csp


# Every CSP violation the page sees, reported to the test as it happens
# (a blocked inline script or style, a connection to an origin the policy
# does not list).
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) =>
  window.cspViolation(`${e.effectiveDirective} blocked ${e.blockedURI}`));"""


@pytest.fixture
def dashboard_page(browser):
    """A fresh context and page. Page routes see only what the page asks
    for; Chromium's own background traffic (updates, safe browsing) does
    not go through them, and the launch flags above turn most of it off."""
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    outside: list[str] = []
    errors: list[str] = []
    csp: list[str] = []

    def guard(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.expose_binding("cspViolation", lambda source, text: csp.append(text))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message):
        if "Content Security Policy" in message.text:
            csp.append(message.text)
        # A refused websocket is logged by the browser itself, expected
        # while the ASGI server is down.
        if message.type == "error" and "WebSocket connection" not in message.text:
            errors.append(message.text)

    page.on("console", console)
    yield Page(page, outside, errors, csp)
    context.close()


def in_thread(function, *args, **kwargs):
    """Run Django code off Playwright's event loop, where Django refuses
    ORM calls and async_to_sync (the channel-layer broadcast) cannot run."""
    result: dict = {}

    def run():
        try:
            result["value"] = function(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")
