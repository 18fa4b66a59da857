"""The dashboard in a real browser against real server processes: the page
from one web server (the Procfile's web process), the live metrics from the
websocket of a second one, rollups broadcast through Redis."""

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from experiments import services as experiment_services
from monitoring import services
from monitoring.models import PredictionEvent
from tests.browser.conftest import CHROMIUM, in_thread
from tests.conftest import SEED_FEATURES, ServerProcess, expected_label, free_port

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

pytestmark = pytest.mark.servers

FORM_ROW = [0.5, -1.25, 2.0, 0.0, 1.5, -0.75, 0.25, 1.0, -2.0, 0.125]

RPS_SERIES = """() => Object.fromEntries(
  window.dashboard.charts["chart-rps"].data.datasets.map(
    (d) => [d.label, d.data.reduce((sum, p) => sum + p.y, 0)]))"""
STATE = """() => ({
  messages: window.dashboard.messages,
  status: document.querySelector("#ws-status").textContent,
  rollups: [...window.dashboard.rollups.values()].map(
    (r) => `${r.version}@${r.minute}: ${r.count}`),
  system: window.dashboard.system.length,
  datasets: Object.fromEntries(Object.entries(window.dashboard.charts).map(
    ([id, c]) => [id, c.data.datasets.length])),
})"""
ROLLUP_TOTALS = """() => {
  let count = 0, errors = 0;
  for (const r of window.dashboard.rollups.values()) {
    count += r.count; errors += r.errors;
  }
  return {count, errors};
}"""


def events_stored(n: int, timeout: float = 10.0) -> int:
    """Wait until the servers' event writers stored n events."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = in_thread(PredictionEvent.objects.count)
        if count >= n:
            return count
        time.sleep(0.1)
    raise AssertionError(f"{count} of {n} events stored after {timeout} s")


def wait_for(page, condition: str, *servers, timeout: float = 15_000) -> None:
    """page.wait_for_function, failing with what the page and the servers
    knew. The condition runs as a function: Playwright evaluates a bare
    expression with the page's eval, which the dashboard's CSP forbids."""
    try:
        page.wait_for_function(f"() => ({condition})", timeout=timeout)
    except PlaywrightTimeoutError:
        state = page.evaluate(STATE)
        logs = "\n".join(s.read_log()[-3000:] for s in servers if s.process)
        raise AssertionError(f"{condition!r} not met; page: {state}\n{logs}") from None


def messages(page) -> int:
    return page.evaluate("window.dashboard.messages")


@pytest.fixture
def servers(two_versions, redis_service, start_server, settings, server_env):
    """(web, ws): two web servers on one database, the page from one and
    its websocket from the other (as behind a proxy that routes /ws/
    elsewhere), so the socket can go away while the page stays."""
    # The system sampler, run here, reads the servers' process roles.
    settings.VAR_DIR = Path(server_env["VAR_DIR"])
    ws = start_server()
    web = start_server(WEBSOCKET_URL=f"{ws.ws_url}/ws/metrics/")
    return web, ws


def test_dashboard_predicts_and_draws_live_metrics(servers, dashboard_page, estimators):
    web, ws = servers
    page = dashboard_page.page

    # given: the dashboard, connected to the second server's websocket,
    # which its Content-Security-Policy allows besides its own origin
    answer = page.goto(f"{web.url}/")
    assert page.locator("body").get_attribute("data-ws-url") == (
        f"ws://127.0.0.1:{ws.port}/ws/metrics/"
    )
    policy = answer.headers["content-security-policy"]
    assert f"connect-src 'self' ws://127.0.0.1:{ws.port};" in policy
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    expect(page.locator("#ws-status")).to_have_text("live")
    wait_for(page, "window.dashboard.messages >= 1", web, ws)  # the snapshot
    assert page.evaluate(RPS_SERIES) == {}

    # when: a prediction is made with the form, on v2.0
    inputs = page.locator("#feature-inputs input")
    expect(inputs).to_have_count(10)
    for i, value in enumerate(FORM_ROW):
        inputs.nth(i).fill(str(value))
    page.select_option("#predict-version", "v2.0")
    page.click("#predict-submit")

    # then: its result is on the page
    result = page.locator("#predict-result")
    expect(result).to_contain_text("served by default:v2.0 (explicit)")
    label = expected_label(estimators["rf"], FORM_ROW)
    expect(result).to_contain_text(f"prediction {label} (confidence")

    # when: more traffic through the API (6 on v1.0, 3 on v2.0, 2 refused)
    # and a rollup run, which broadcasts through Redis to the web servers
    for i in range(6):
        row = [x + i for x in SEED_FEATURES]
        assert (
            httpx.post(f"{web.url}/predict", json={"features": row}).status_code == 200
        )
    for _ in range(3):
        body = {"features": SEED_FEATURES, "model_version": "v2.0"}
        assert httpx.post(f"{web.url}/predict", json=body).status_code == 200
    for _ in range(2):
        body = {"features": [1.0, 2.0], "model_version": "v1.0"}
        assert httpx.post(f"{web.url}/predict", json=body).status_code >= 400
    events_stored(12)
    before = messages(page)
    report = in_thread(services.rollup_run)
    assert report.broadcast is True

    # then: a websocket message redraws the charts and tables
    wait_for(
        page,
        f"window.dashboard.messages > {before} && "
        "window.dashboard.charts['chart-rps'].data.datasets.length >= 2",
        web,
        ws,
    )
    page.wait_for_timeout(200)  # renders are coalesced over 50 ms
    rps = page.evaluate(RPS_SERIES)
    assert rps["v1.0"] > 0 and rps["v2.0"] > 0, rps
    assert page.evaluate(ROLLUP_TOTALS) == {"count": 12, "errors": 2}
    latency = page.evaluate(
        "window.dashboard.charts['chart-latency'].data.datasets.map(d => d.label)"
    )
    assert {"v1.0 p50", "v1.0 p99", "v2.0 p50", "v2.0 p99"} <= set(latency)
    error_points = page.evaluate(
        "window.dashboard.charts['chart-errors'].data.datasets"
        ".flatMap(d => d.data.map(p => p.y))"
    )
    assert max(error_points) > 0
    comparison = page.locator("#comparison tbody")
    expect(comparison.locator("tr[data-version='v2.0'] td").nth(1)).to_have_text("4")
    expect(comparison.locator("tr[data-version='v1.0'] td").nth(6)).to_have_text(
        "0.800"  # held-out accuracy, from the registry metadata
    )
    expect(page.locator("#sum-count")).to_have_text("12")
    ab = page.evaluate("window.dashboard.charts['chart-ab'].data")
    assert set(ab["labels"]) == {"v1.0", "v2.0"}
    assert sum(ab["datasets"][0]["data"]) == pytest.approx(100)
    expect(page.locator("#ab-note")).to_contain_text("No experiment running")

    # when: one more request and a run that re-sends the minute's bucket
    httpx.post(f"{web.url}/predict", json={"features": SEED_FEATURES})
    events_stored(13)
    before = messages(page)
    in_thread(services.rollup_run)
    # then: the bucket is replaced, not added to
    wait_for(page, f"window.dashboard.messages > {before}", web, ws)
    page.wait_for_timeout(200)
    assert page.evaluate(ROLLUP_TOTALS) == {"count": 13, "errors": 2}
    expect(page.locator("#sum-count")).to_have_text("13")

    # when: a system sample is taken and broadcast
    in_thread(services.system_sample)
    # then: the resources chart and the process table show it
    wait_for(
        page, "window.dashboard.charts['chart-system'].data.datasets.length === 3", ws
    )
    expect(page.locator("#system-now")).to_contain_text("CPU")
    expect(page.locator("#processes tbody tr").first).to_be_visible()

    # when: the websocket server goes away
    ws.stop()
    # then: the page says it is reconnecting, with a countdown
    expect(page.locator("#ws-status")).to_have_text(
        re.compile(r"^reconnecting in \d+ s…$")
    )
    # when: it is back on the same port
    again = ServerProcess(ws.env, port=ws.port)
    try:
        before = messages(page)
        again.start()
        # then: the page reconnects on its own and gets a fresh snapshot
        expect(page.locator("#ws-status")).to_have_text("live", timeout=45_000)
        wait_for(page, f"window.dashboard.messages > {before}", again)
        page.wait_for_timeout(200)
        assert page.evaluate(ROLLUP_TOTALS) == {"count": 13, "errors": 2}
    finally:
        again.stop()

    # the page, Chart.js and every live update ran within the policy
    assert dashboard_page.csp == []
    assert dashboard_page.errors == []
    assert dashboard_page.outside == []

    # and a violation would have been seen: an inline script is refused
    page.evaluate(
        """() => { const s = document.createElement("script");
        s.textContent = "window.inlineRan = true;"; document.body.append(s); }"""
    )
    deadline = time.monotonic() + 5
    while not any("script-src" in v for v in dashboard_page.csp):
        assert time.monotonic() < deadline, dashboard_page.csp
        page.wait_for_timeout(50)
    assert page.evaluate("window.inlineRan") is None


EXPERIMENT_REQUESTS = """(name) => Object.fromEntries(
  [...document.querySelectorAll(
    `#experiments .experiment[data-experiment="${name}"] tr[data-arm]`)]
  .map((row) => [row.dataset.arm,
    Number(row.querySelector("td.requests").textContent.replace(/\\D/g, ""))]))"""


def shadow_add(root, estimator) -> None:
    """v3.0 (a RandomForest) answers a copy of every experiment request."""
    from experiments.models import Experiment
    from registry import services as registry_services
    from tests.conftest import dump

    v3 = registry_services.model_version_register(
        model_name="default",
        version="v3.0",
        source=dump(root, "model_v3.0.pkl", estimator),
    )
    experiment = Experiment.objects.get()
    arms = [
        (v.version, v.weight) for v in experiment.variants.select_related("version")
    ]
    experiment_services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=experiment_services.ExperimentSpec(variants=arms, shadows=[(v3, 100.0)]),
    )


def test_experiment_panel_updates_live(
    servers, dashboard_page, two_versions, estimators
):
    web, ws = servers
    page = dashboard_page.page

    # given: a running 50/50 experiment between v1.0 and v2.0
    configure = {
        "enabled": True,
        "split_ratio": 0.5,
        "models": ["v1.0", "v2.0"],
        "strategy": "random",
    }
    response = httpx.post(f"{web.url}/ab-test/configure", json=configure)
    assert response.status_code == 200, response.text
    name = response.json()["experiment"]
    assert response.json()["status"] == "running"
    in_thread(shadow_add, two_versions["root"], estimators["rf"])

    # and: the dashboard, whose snapshot lists it without traffic yet
    page.goto(f"{web.url}/")
    expect(page.locator("#ws-status")).to_have_text("live")
    wait_for(page, "(window.dashboard.messageTypes.snapshot || 0) >= 1", web, ws)
    experiment = page.locator(f"#experiments .experiment[data-experiment='{name}']")
    expect(experiment).to_be_visible()
    expect(experiment.locator("h3")).to_contain_text("running")
    expect(experiment.locator(".facts")).to_contain_text("strategy random")
    assert page.evaluate(EXPERIMENT_REQUESTS, name) == {"v1.0": 0, "v2.0": 0}

    # when: 40 predictions through the API, assigned by the experiment (the
    # server sees the new experiment within a registry poll)
    sent: dict[str, int] = {}
    deadline = time.monotonic() + 10
    answers = 0
    while sum(sent.values()) < 40:
        assert time.monotonic() < deadline, f"not routed by {name}: {sent}"
        row = [x + answers for x in SEED_FEATURES]
        answer = httpx.post(f"{web.url}/predict", json={"features": row})
        assert answer.status_code == 200, answer.text
        answers += 1
        routing = answer.json()["routing"]
        if routing["reason"] == "experiment":
            assert routing["experiment"] == name
            sent[routing["arm"]] = sent.get(routing["arm"], 0) + 1
    # the 40 routed requests were also answered by the shadow
    events_stored(answers + 40)
    # and: a rollup, then the experiments' evaluation, which broadcasts
    # their status through Redis to the web servers
    before = page.evaluate("window.dashboard.messageTypes.experiments || 0")
    assert in_thread(services.rollup_run).broadcast is True
    report = in_thread(experiment_services.experiments_evaluate)
    assert report.experiments == 1

    # then: an "experiments" websocket message redraws the arms' rows
    # (rendering is coalesced over 50 ms, after the message is counted)
    wait_for(
        page,
        f"(window.dashboard.messageTypes.experiments || 0) > {before} && "
        f"Object.values(({EXPERIMENT_REQUESTS})({json.dumps(name)}))"
        ".reduce((a, b) => a + b, 0) === 40",
        web,
        ws,
    )
    requests = page.evaluate(EXPERIMENT_REQUESTS, name)
    assert requests == {"v1.0": sent.get("v1.0", 0), "v2.0": sent.get("v2.0", 0)}
    assert page.evaluate(
        "(name) => window.dashboard.experiments"
        ".filter((e) => e.experiment === name).map((e) => e.total_requests)",
        name,
    ) == [40]
    arms = experiment.locator("tr[data-arm]")
    expect(arms).to_have_count(2)
    # the control has no test against itself; the challenger has both p's
    expect(experiment.locator("tr[data-arm='v1.0'] td.z-p")).to_have_text("–")
    expect(experiment.locator("tr[data-arm='v2.0'] td.z-p")).to_have_text(
        re.compile(r"^(< 0\.001|[01]\.\d{3})$")
    )
    expect(experiment.locator("tr[data-arm='v2.0'] td.msprt-p")).to_have_text(
        re.compile(r"^(< 0\.001|[01]\.\d{3})$")
    )
    # the SRM warning shows exactly when the check flags the split (40
    # random 50/50 assignments are flagged about once in 900 runs)
    flagged = page.evaluate(
        "(name) => window.dashboard.experiments.find((e) => e.experiment === name)"
        ".statistics.sample_ratio_mismatch.flagged",
        name,
    )
    expect(experiment.locator(".srm-warning")).to_have_count(1 if flagged else 0)
    # nothing failed: no guardrail alert, no paused arm
    expect(experiment.locator(".guardrail-alert")).to_have_count(0)
    expect(experiment.locator(".badge.paused")).to_have_count(0)
    # the shadow's copies show in the experiment, not as traffic
    shadow_row = experiment.locator("table.shadows tr[data-shadow='v3.0']")
    expect(shadow_row).to_contain_text("40")
    expect(page.locator("#ab-table")).not_to_contain_text("shadow")
    expect(page.locator("#ab-table")).to_contain_text("v1.0")

    assert dashboard_page.csp == []
    assert dashboard_page.errors == []
    assert dashboard_page.outside == []


def test_staff_activate_and_roll_back_from_the_dashboard(
    two_versions, start_server, settings, dashboard_page
):
    # given: a staff user, and a server whose websocket nobody serves
    # (the servers verify passwords with the production hashers)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user_model = get_user_model()
    in_thread(
        user_model.objects.create_user,
        username="ops",
        password="pw-for-tests",
        is_staff=True,
    )
    closed_port = free_port()
    web = start_server(WEBSOCKET_URL=f"ws://127.0.0.1:{closed_port}/ws/metrics/")
    page = dashboard_page.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{web.url}/")
    # anonymous: no buttons, and the socket is retried with a countdown
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("button.activate")).to_have_count(0)
    expect(page.locator("#rollback")).to_be_hidden()
    expect(page.locator("#ws-status")).to_have_text(re.compile(r"^reconnecting in "))

    # when: staff logs in through the admin and comes back
    page.goto(f"{web.url}/admin/login/?next=/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-for-tests")
    page.click("input[type=submit]")
    page.wait_for_url(f"{web.url}/")

    # then: Activate on v2.0, and it becomes the active version
    expect(page.locator(".who")).to_have_text("ops")
    page.click("#versions tr[data-version='v2.0'] button.activate")
    expect(page.locator("#action-result")).to_have_text("activated: v1.0 -> v2.0")
    expect(page.locator("#versions tr[data-version='v2.0'] td").nth(5)).to_have_text(
        "active"
    )
    assert httpx.get(f"{web.url}/models").json()["active_version"] == "v2.0"

    # when: Roll back
    page.click("#rollback")
    # then: v1.0 is active again
    expect(page.locator("#action-result")).to_have_text("rolled back: v2.0 -> v1.0")
    expect(page.locator("#versions tr[data-version='v1.0'] td").nth(5)).to_have_text(
        "active"
    )
    assert httpx.get(f"{web.url}/models").json()["active_version"] == "v1.0"

    assert dashboard_page.csp == []
    assert dashboard_page.errors == []
    assert dashboard_page.outside == []
