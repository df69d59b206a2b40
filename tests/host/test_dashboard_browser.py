"""`vegw dashboard` in a real browser: Debian's headless Chromium, driven by
the playwright package (executable_path: no browser download), against
simulated gateways (vegw/dashboard/simfleet.py) on a real Mosquitto.

The page is sorted by SoC, sees a site go offline and an alarm appear
without a reload, filters to the sites in trouble, and opens a site page
whose charts come from the gateway's log. Screenshots are kept in
build/test-artifacts/dashboard/ (the path is printed)."""
import os
import pathlib
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEGW = str(ROOT / ".venv" / "bin" / "vegw")
ARTIFACTS = ROOT / "build" / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

pytest.importorskip("aiohttp", reason="vegw[dashboard] (aiohttp) not installed: make deps")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed: make deps")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (make chromium)", allow_module_level=True)

from vegw.broker import free_port  # noqa: E402
from vegw.dashboard import simfleet  # noqa: E402

N = 30


@pytest.fixture(scope="module")
def site(broker):
    sim = simfleet.SimFleet(broker, N, prefix="web", history_minutes=1440).start()
    port = free_port()
    p = subprocess.Popen([VEGW, "dashboard", "--broker", broker, "--prefix", "web", "--listen",
                          "127.0.0.1:%d" % port, "--history-timeout", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "vegw dashboard: http://" in p.stdout.readline()
        yield sim, "http://127.0.0.1:%d" % port
    finally:
        p.terminate()
        _, err = p.communicate(timeout=15)
        sim.stop()
        assert p.returncode == 0 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.problems = []  # script errors and console errors (a CSP violation shows there)
        pg.on("pageerror", lambda e: pg.problems.append("page error: %s" % e))
        pg.on("console", lambda m: m.type == "error" and pg.problems.append("console: %s" % m.text))
        pg.set_default_timeout(15000)
        yield pg
        browser.close()
    print("dashboard screenshots: %s" % ARTIFACTS)


def shot(pg, name, full=False):
    path = ARTIFACTS / name
    pg.screenshot(path=str(path), full_page=full)
    print("screenshot %s" % path)


def wait_js(pg, expr, timeout=15.0):
    """Poll a JS expression until it is true. (page.evaluate goes through the
    debugging protocol; playwright's wait_for_function evals a string in the
    page, which the dashboard's Content-Security-Policy rightly forbids.)"""
    end = time.monotonic() + timeout
    while not pg.evaluate(expr):
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for: %s" % expr)
        time.sleep(0.05)


def soc_column(pg):
    texts = pg.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.children[2].textContent)")
    return [None if t == "-" else float(t) for t in texts]


def test_fleet_page_sorts_goes_live_and_opens_a_site(site, page):
    sim, url = site
    t0 = time.monotonic()
    page.goto(url + "/")
    wait_js(page, "document.querySelectorAll('#rows tr').length === %d" % N)
    print("first paint of %d sites: %.2f s" % (N, time.monotonic() - t0))
    page.evaluate("window.notReloaded = true")

    # sort by SoC: ascending, then descending (nulls last both ways)
    page.click("th[data-key=soc]")
    socs = soc_column(page)
    assert socs == sorted(socs) and len(socs) == N and None not in socs
    page.click("th[data-key=soc]")
    assert soc_column(page) == sorted(socs, reverse=True)
    page.click("th[data-key=soc]")
    assert "sort=soc" in page.url and page.get_attribute("th[data-key=soc]", "aria-sort") == "ascending"
    shot(page, "fleet-sorted-by-soc.png")

    # news arrive without a reload: a site goes offline, an alarm is raised
    sim.go_offline(3)
    wait_js(page, "(document.querySelector('tr[data-id=site0003] .badge') || {}).textContent === 'OFFLINE'")
    sim.alarm(8, "low_bank", "alarm")
    wait_js(page, "(document.querySelector('tr[data-id=site0008] .tag') || {}).textContent === 'low_bank'")
    assert page.evaluate("window.notReloaded") is True
    assert page.text_content("tr[data-id=site0008] .badge") == "ALARM"
    # still sorted by SoC after the live updates
    socs = soc_column(page)
    assert socs == sorted(socs)

    # in trouble only: exactly the two sites, worst first; then a text filter
    page.check("#trouble")
    ids = page.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.dataset.id)")
    assert sorted(ids) == ["site0003", "site0008"]
    assert "2</b> in trouble" in page.inner_html("#summary")
    shot(page, "fleet-in-trouble.png")
    page.uncheck("#trouble")
    page.fill("#filter", "low_bank")
    wait_js(page, "document.querySelectorAll('#rows tr').length === 1")
    page.fill("#filter", "")
    wait_js(page, "document.querySelectorAll('#rows tr').length === %d" % N)

    # the site page: devices, the alarm with its raise time, charts from the log
    page.click("tr[data-id=site0008] a")
    page.wait_for_url("**/site/site0008")
    page.wait_for_selector("#charts[data-ready='1']")
    titles = page.eval_on_selector_all("figure.chart figcaption", "fs => fs.map(f => f.textContent)")
    assert "State of charge (%)" in titles and "Battery voltage (V)" in titles and "PV power (W)" in titles
    assert page.eval_on_selector_all("svg.plot path.series", "ps => ps.filter(p => p.getAttribute('d').length > 100)"
                                      ".length") >= 4
    alarms = page.text_content("#alarms")
    assert "low_bank" in alarms and "active" in alarms
    assert page.eval_on_selector_all(".device h3", "hs => hs.length") == 3
    assert "records" in page.text_content("#histnote")
    shot(page, "site-page.png", full=True)
    # hover shows a value with the field's decimals
    page.hover("figure.chart:nth-child(2) svg.plot", position={"x": 300, "y": 80})
    tip = page.text_content("figure.chart:nth-child(2) .tip")
    assert " V" in tip and any(len(w.split(".")[-1]) == 2 for w in tip.split() if "." in w and w[0].isdigit())
    # the alarm clears while the page is open
    sim.alarm(8, "low_bank", "alarm", raised=False)
    wait_js(page, "document.getElementById('state').textContent === 'OK'")
    wait_js(page, "document.querySelector('#alarms').textContent.includes('No active alarm')")
    page.click("#spans button[data-span=week]")
    page.wait_for_selector("#charts[data-ready='1'][data-span=week]")
    shot(page, "site-page-week.png", full=True)
    assert page.problems == []
