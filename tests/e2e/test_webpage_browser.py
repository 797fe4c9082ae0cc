"""The operator's page in a real browser (Debian's Chromium, headless, through Playwright)
against a running service on the simulated park (tests/e2e/conftest_web.py).

Signs in with keys of each role; checks that every view draws real charts from the running
service (pixels of the series' colours on the canvases, the data points they hold, the
figures against the API's); that a DR invitation confirmed on the page changes the plan the
page then shows; that a viewer's page has no confirm button and the API refuses the call;
that the page loads nothing from outside the service (every non-loopback request is
route-blocked and none may be attempted); that a new cycle reaches an open page within 2 s;
that a wrong key is refused on the page, the tabs and the network drawing work from the
keyboard, and an admin creates and revokes a key.
Screenshots of each view in both languages go to var/screenshots/webpage/ (git-ignored).
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest_web import SCREENSHOTS, browser, service, wait_for  # noqa: F401
from tests.service_kit import headers

VIEWS = ("now", "network", "dr", "health", "month")
LANGS = ("zh-CN", "en")
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}  # a 10.9-inch tablet, portrait
# The series' colours (api/ui/static/charts.js): measured blue, plan orange, SOC green, PV.
MEASURED_RGB = (31, 111, 235)
PLAN_RGB = (217, 119, 6)
SOC_RGB = (26, 127, 55)
PV_RGB = (191, 135, 0)

COUNT_PIXELS = """([sel, rgb]) => {
  const c = document.querySelector(sel + ' canvas');
  if (!c) return -1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) < 24 && Math.abs(d[i + 1] - rgb[1]) < 24
        && Math.abs(d[i + 2] - rgb[2]) < 24) n++;
  }
  return n;
}"""


def _page(browser, svc, role: str, lang: str = "en", viewport=DESKTOP, bypass_csp=True):  # noqa: F811
    """A fresh context signed in with the role's key; the page's language set."""
    ctx = browser.new_context(viewport=viewport, bypass_csp=bypass_csp, locale=lang)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.goto(svc.base + "/")
    page.select_option("#lang", lang)
    page.fill("#key", svc.keys[role])
    page.click("#signin-button")
    page.wait_for_selector("#view-now:not([hidden])", timeout=15_000)
    return ctx, page


def _js(page, expr: str):
    return page.evaluate(expr)


def _wait_js(page, expr: str, timeout_s: float, what: str):
    """Poll a page expression from here (page.wait_for_function evaluates strings, which
    the page's Content-Security-Policy forbids when it is not bypassed)."""
    return wait_for(lambda: page.evaluate(expr), timeout_s, what)


def _points(page, sel: str) -> int:
    return int(page.evaluate(f"Number(document.querySelector('{sel}').dataset.points || 0)"))


def _pixels(page, sel: str, rgb) -> int:
    return page.evaluate(COUNT_PIXELS, [sel, list(rgb)])


def _show(page, view: str) -> None:
    page.click(f"#tab-{view}")
    page.wait_for_selector(f"#view-{view}:not([hidden])")


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _wait_view(page, view: str, svc) -> None:
    """Wait for the view's figures from the running service."""
    if view == "now":
        _wait_js(page, "Number(document.querySelector('#chart-import').dataset.points) > 50",
                 10, "the Now charts")  # fmt: skip
    elif view == "network":
        _wait_js(page, "Number(document.querySelector('#net-drawing').dataset.elements) > 0 "
                 "&& Number(document.querySelector('#chart-element').dataset.points) > 0",
                 25, "the network drawing")  # fmt: skip
    elif view == "dr":
        _wait_js(page, "document.querySelector('#dr-list').children.length > 0", 10, "DR list")
    elif view == "health":
        _wait_js(page, "Number(document.querySelector('#chart-timings').dataset.points) > 0",
                 10, "the timings chart")  # fmt: skip
    elif view == "month":
        _wait_js(page, "document.querySelectorAll('#month-cards .stat').length >= 6", 10,
                 "the month's figures")  # fmt: skip


@pytest.fixture(scope="module")
def invitation(service):  # noqa: F811
    """An invitation (not honoured until confirmed) whose cap is under the plan's import in
    its window: an hour of simulated time four hours ahead (four minutes of the test's
    clock), to be confirmed before it starts."""
    rt = service.rt
    now = rt.clock.now()
    step = timedelta(minutes=rt.site.dispatch.step_minutes)
    start = (now + timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    plan = rt.current.plan
    k0 = round((start - plan.horizon.start) / step)
    in_window = [float(x) for x in plan.p_net_kw[k0 : k0 + 4]]
    cap = round(min(in_window) - 120.0)
    body = {
        "event_id": "SG-WEB-INV-1",
        "direction": "peak_shaving",
        "windows": [{"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}],
        "requested_kw": 150.0,
        "import_cap_kw": cap,
        "issuer": "State Grid Zhejiang",
        "contract_type": "invitation",
        "call_class": "intraday",
        "confirm_deadline": (start - timedelta(minutes=15)).isoformat(),
        "subsidy_cny_per_kwh": 3.0,
        "nonperformance_cny_per_kwh": 20.0,
    }
    r = service.client.post(
        "/api/v1/dr-events", json=body, headers=headers(service.keys["utility"])
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "announced"
    return {"event_id": body["event_id"], "cap_kw": cap, "start": start, "window_max": in_window}


def test_every_view_draws_the_running_services_figures(browser, service, invitation):  # noqa: F811
    """Each view, in both languages: charts with drawn series (pixels of their colours on
    the canvas, the data points they hold), figures equal to the API's, every figure card
    labelled measured or plan; screenshots at 1,280 px and on a tablet."""
    h = headers(service.keys["viewer"])
    for lang in LANGS:
        ctx, page = _page(browser, service, "operator", lang)
        try:
            for view in VIEWS:
                _show(page, view)
                _wait_view(page, view, service)
                _shot(page, f"{view}-{lang}")
            # The Now view: the park meter and the plan drawn, against the API's figures.
            _show(page, "now")
            _wait_view(page, "now", service)
            # (a line, not its length: with the grid-friendly ramp weight the small park's
            # import runs flat at its month peak for hours, 167 pixels where it drew 200+)
            assert _pixels(page, "#chart-import", MEASURED_RGB) > 100
            assert _pixels(page, "#chart-import", PLAN_RGB) > 100
            assert _pixels(page, "#chart-soc", SOC_RGB) > 100
            assert _pixels(page, "#chart-pvev", PV_RGB) > 100
            now = service.client.get("/api/v1/now", headers=h).json()
            shown = page.evaluate("document.querySelector('#chart-import')._u.data")
            measured = [v for v in shown[1] if v is not None]
            api_measured = [v for v in now["past"]["p_net_kw"] if v is not None]
            assert len(measured) == len(api_measured) >= 12  # hours of the park meter
            assert measured[-5:] == api_measured[-5:]
            tags = page.evaluate(
                "[...document.querySelectorAll('.stat')].map(c => "
                "c.querySelector('.tag.measured, .tag.plan') ? 1 : 0)"
            )
            assert tags and all(tags), "every figure card says measured or plan"
            # Network: every bus and branch drawn, coloured; the element chart drawn.
            _show(page, "network")
            _wait_view(page, "network", service)
            net = service.client.get("/api/v1/network", headers=h).json()
            drawn = page.evaluate("document.querySelectorAll('#net-drawing [data-element]').length")
            assert drawn == len(net["buses"]) + len(net["branches"])
            assert _pixels(page, "#chart-element", MEASURED_RGB) > 50
            rows = page.evaluate("document.querySelectorAll('#element-table tbody tr').length")
            assert rows == len(net["branches"])
            # Keyboard: Tab to a drawn element, Enter selects it and draws its chart.
            page.focus("#net-drawing [data-element='PCC-F1']")
            page.keyboard.press("Enter")
            title = page.locator("#element-title")
            wait_for(lambda: "PCC-F1" in title.inner_text(), 5, "PCC-F1 selected")  # noqa: B023
            # Health and month: the timings chart, the month's cost as the API says it.
            _show(page, "health")
            _wait_view(page, "health", service)
            assert _pixels(page, "#chart-timings", MEASURED_RGB) > 50
            _show(page, "month")
            _wait_view(page, "month", service)
            mtd = service.client.get("/api/v1/month-to-date", headers=h).json()
            text = page.inner_text("#month-cards")
            cost = page.evaluate(
                "(x) => new Intl.NumberFormat(I18N.lang, {maximumFractionDigits: 0, "
                "minimumFractionDigits: 0}).format(x)",
                mtd["energy"]["energy_cost_cny"],
            )
            assert cost in text
            assert page.errors == []
        finally:
            ctx.close()
        # A tablet, portrait: the Now and Network views still lay out.
        ctx, page = _page(browser, service, "operator", lang, viewport=TABLET)
        try:
            for view in ("now", "network", "dr"):
                _show(page, view)
                _wait_view(page, view, service)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= TABLET["width"] + 1, f"{view} scrolls sideways at {width} px"
                _shot(page, f"{view}-{lang}-tablet")
        finally:
            ctx.close()


def test_confirming_an_invitation_on_the_page_changes_the_plan_it_shows(
    browser,  # noqa: F811
    service,  # noqa: F811
    invitation,
):
    ev, cap = invitation["event_id"], invitation["cap_kw"]
    ctx, page = _page(browser, service, "operator", "en")
    try:
        _show(page, "now")
        _wait_view(page, "now", service)
        before = _plan_in_window(page, invitation)
        assert max(before["plan"]) > cap + 50, "the invitation is not honoured yet"
        assert all(c is None for c in before["cap"]), "no DR cap before it is confirmed"
        _show(page, "dr")
        card = f"#dr-list [data-event='{ev}']"
        page.wait_for_selector(f"{card}[data-status='announced']")
        page.click(f"{card} [data-action='confirm']")
        decision = wait_for(
            lambda: page.evaluate("document.body.dataset.lastDecision || ''"), 20, "the confirm"
        )
        page.wait_for_selector(f"{card}[data-status='confirmed']", timeout=10_000)
        got = __import__("json").loads(decision)
        assert got["status"] == "confirmed" and got["plan_state"] == "planned"
        version = got["plan_version"]
        _show(page, "now")
        wait_for(
            lambda: int(page.evaluate("document.body.dataset.shownPlanVersion || 0")) >= version,
            10,
            f"the page to show plan v{version}",
        )
        after = _plan_in_window(page, invitation)
        _shot(page, "now-after-confirm-en")
        _show(page, "dr")
        page.wait_for_selector(f"{card}[data-status='confirmed']")
        _shot(page, "dr-after-confirm-en")
        _show(page, "network")
        _wait_view(page, "network", service)
        page.check("#net-mode input[value='planmax']")
        listed = page.locator("#binding-list")
        # The plan holds the cap: a binding limit, named.
        wait_for(lambda: "DR cap" in listed.inner_text(), 10, "the DR cap among the limits")
        _shot(page, "network-after-confirm-en")
        assert all(c is not None and abs(c - cap) < 1.0 for c in after["cap"]), after
        assert max(after["plan"]) <= cap + 1.0, (after, cap)
        api = service.client.get("/api/v1/dr-events/" + ev, headers=headers(service.keys["viewer"]))
        assert api.json()["status"] == "confirmed"
        assert api.json()["history"][-1]["by"] == "test-operator"
    finally:
        ctx.close()


def _plan_in_window(page, inv) -> dict[str, list]:
    """What the page's import chart holds in the event's window: the plan ahead and the DR
    cap series (by the chart's own x values)."""
    t0 = inv["start"].timestamp()
    data = page.evaluate("document.querySelector('#chart-import')._u.data")
    xs = data[0]
    idx = [i for i, x in enumerate(xs) if t0 <= x < t0 + 3600]
    assert len(idx) == 4, (idx, t0)
    return {"plan": [data[3][i] for i in idx], "cap": [data[6][i] for i in idx]}


def test_a_viewers_page_offers_no_confirm_and_the_api_refuses_it(browser, service, invitation):  # noqa: F811
    ctx, page = _page(browser, service, "viewer", "zh-CN")
    try:
        _show(page, "dr")
        _wait_view(page, "dr", service)
        page.select_option("#dr-filter", "all")
        page.wait_for_selector(f"#dr-list [data-event='{invitation['event_id']}']")
        assert page.locator("#dr-list [data-action='confirm']").count() == 0
        assert page.locator("#dr-list [data-action='decline']").count() == 0
        assert "值班员" in page.inner_text("#dr-note")  # says an operator key is needed
        assert page.is_hidden("#tab-keys")
        # Keyboard: the tabs follow the arrow keys (roving focus, aria-selected).
        page.focus("#tab-dr")
        page.keyboard.press("ArrowRight")
        assert page.get_attribute("#tab-health", "aria-selected") == "true"
        assert page.evaluate("document.activeElement.id") == "tab-health"
        page.keyboard.press("Home")
        assert page.is_visible("#view-now")
        status = page.evaluate(
            """async ([id, key]) => (await fetch(`/api/v1/dr-events/${id}/confirm`,
                 {method: 'POST', headers: {Authorization: `Bearer ${key}`}})).status""",
            [invitation["event_id"], service.keys["viewer"]],
        )
        assert status == 403
    finally:
        ctx.close()
    r = service.client.post(
        f"/api/v1/dr-events/{invitation['event_id']}/decline",
        headers=headers(service.keys["viewer"]),
    )
    assert r.status_code == 403


def test_the_page_needs_nothing_but_the_service(browser, service):  # noqa: F811
    """With every request to anything but the service's loopback address blocked (and
    counted), the page signs in and every view renders; no request left the machine, none
    failed, and the page's own Content-Security-Policy (not bypassed here) holds."""
    ctx = browser.new_context(viewport=DESKTOP)
    outside: list[str] = []
    failed: list[str] = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", "localhost", "::1") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    seen: list[str] = []
    page.on("request", lambda q: seen.append(q.url))
    page.on("requestfailed", lambda q: failed.append(f"{q.url} {q.failure}"))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url} {r.status}"))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        resp = page.goto(service.base + "/")
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        page.fill("#key", "vpp_0123456789abcdef_not-a-key")  # refused: says so, stays out
        page.click("#signin-button")
        wait_for(lambda: page.inner_text("#signin-error").strip(), 10, "the refusal")
        assert page.is_hidden("#tabs")
        failed.clear()  # the refused /me (401) was meant
        page.fill("#key", service.keys["admin"])
        page.click("#signin-button")
        page.wait_for_selector("#view-now:not([hidden])")
        for view in (*VIEWS, "keys"):
            _show(page, view)
            if view != "keys":
                _wait_view(page, view, service)
        wait_for(lambda: page.locator("#key-table tbody tr").count() >= 4, 10, "the key list")
        fonts = page.evaluate("document.fonts.size")
        assert fonts == 0, "no web font: the platform's fonts only"
        assert outside == []
        assert failed == [], failed
        assert errors == []
        assert all(u.startswith(service.base) or u.startswith("data:") for u in seen), seen
    finally:
        ctx.close()


def test_a_new_cycle_reaches_an_open_page_within_2_s(browser, service):  # noqa: F811
    """A cycle asked for now (operator): its plan shows on the Now view within 2 s of the
    runtime publishing it, without a reload (server-sent events)."""
    ctx, page = _page(browser, service, "operator", "en")
    try:
        _wait_view(page, "now", service)
        _wait_js(page, "document.querySelector('#live').dataset.state === 'on'", 5, "live")
        rt = service.rt
        before = rt.current.version
        r = service.client.post("/api/v1/cycles", headers=headers(service.keys["operator"]))
        assert r.status_code == 202
        wait_for(lambda: rt.current.version > before, 20, "the cycle", every_s=0.01)
        published = time.monotonic()
        version = rt.current.version
        wait_for(
            lambda: int(page.evaluate("document.body.dataset.shownPlanVersion || 0")) >= version,
            2.0,
            f"plan v{version} on the page within 2 s",
            every_s=0.02,
        )
        assert time.monotonic() - published < 2.0
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    finally:
        ctx.close()


def test_an_admin_creates_and_revokes_a_key_on_the_page(browser, service):  # noqa: F811
    ctx, page = _page(browser, service, "admin", "en")
    try:
        _show(page, "keys")
        page.fill("#key-name", "web-created")
        page.select_option("#key-role", "viewer")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#key-created:not([hidden])")
        shown = page.inner_text("#key-created")
        key = shown.split(": ", 1)[1].split(" ")[0]
        assert key.startswith("vpp_")
        ok = service.client.get("/api/v1/me", headers=headers(key))
        assert ok.status_code == 200 and ok.json()["role"] == "viewer"
        row = page.locator("#key-table tbody tr", has_text="web-created")
        row.locator("button").click()
        wait_for(lambda: "revoked" in row.inner_text(), 10, "the key revoked")
        assert service.client.get("/api/v1/me", headers=headers(key)).status_code == 401
    finally:
        ctx.close()
