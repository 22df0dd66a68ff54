"""The fleet page in headless Chromium: what an operator sees, on a desk and on a phone.

Screenshots are kept in ``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import time

import pytest
from collector_fixtures import ARTIFACTS
from collectorlab import make_report

XSS_SITE = '<img src=x onerror="window.__xss=1">'
XSS_EVIDENCE = "<script>window.__xss=2</script> reader said <b>hi</b>"

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _seed(f) -> dict[str, str]:
    now = time.time()
    tokens = {}
    for i in range(1, 6):
        tokens[f"lane-{i}"] = f.terminal(f"lane-{i}", "store-042")
        if i == 1:
            assert f.post(tokens["lane-1"], make_report("lane-1", "store-042", started=now - 3600, verdict="healthy",
                                                        cause="none")).status_code == 201
        report = make_report(f"lane-{i}", "store-042", started=now - 400 + 60 * i, cause="network.wan",
                             evidence=["gateway 10.42.0.1 answers", f"payment host unreachable from lane-{i}"],
                             remediation=["Call the store's ISP about the uplink", "Switch the router to the 4G backup"])
        assert f.post(tokens[f"lane-{i}"], report).status_code == 201
    for tid, verdict, cause in (("till-a", "healthy", "none"), ("till-b", "degraded", "network.degraded")):
        tokens[tid] = f.terminal(tid, "store-007")
        assert f.post(tokens[tid], make_report(tid, "store-007", verdict=verdict, cause=cause)).status_code == 201
    f.terminal("ghost", "store-013")  # registered, never heard from: silent
    tokens["lane-x"] = f.terminal("lane-x")
    assert f.post(tokens["lane-x"], make_report("lane-x", XSS_SITE, cause="reader.substituted", evidence=[XSS_EVIDENCE],
                                                remediation=["<i>unplug</i> the reader"])).status_code == 201
    return tokens


@pytest.mark.chromium
def test_fleet_page_shows_incidents_first_sites_silent_terminals_chart_and_a_terminals_reports(fleet, browser):
    f = fleet(silent_after_min=15)
    tokens = _seed(f)
    operator = f.operator("alice")
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f.url + "/")
    assert page.url.endswith("/signin")
    page.fill("#token", operator)
    page.click("button[type=submit]")
    page.wait_for_url(f.url + "/")
    page.wait_for_selector(".incident")

    assert page.locator("main h2").first.inner_text() == "Open incidents"
    incident = page.locator(".incident").first.inner_text()
    assert "network.wan" in incident and "site store-042" in incident and "5 terminals" in incident
    assert page.locator(".incident").count() == 1

    sites = page.locator("section.site h3").all_inner_texts()
    assert [s.split()[0] for s in sites][:1] == ["store-042"]  # the failing store comes first
    assert any(s.startswith("store-013") for s in sites) and any(s.startswith("store-007") for s in sites)
    ghost = page.locator("button.terminal[data-terminal=ghost]")
    assert "silent" in (ghost.get_attribute("class") or "")
    assert "silent" in ghost.inner_text() and "never" in ghost.inner_text()
    assert "silent" not in (page.locator("button.terminal[data-terminal=lane-2]").get_attribute("class") or "")

    assert page.locator("#chart svg rect").count() == 4  # network.wan, none, network.degraded, reader.substituted
    assert "network.wan: 5 terminals" in page.locator("#chart svg title").all_text_contents()

    # A report arriving now shows up without a reload.
    tokens["lane-6"] = f.terminal("lane-6", "store-042")
    assert f.post(tokens["lane-6"], make_report("lane-6", "store-042", cause="network.wan")).status_code == 201
    page.wait_for_selector("button.terminal[data-terminal=lane-6]", timeout=12_000)
    page.wait_for_function("document.querySelector('.incident').innerText.includes('6 terminals')", timeout=12_000)

    page.click("button.terminal[data-terminal=lane-1]")
    page.wait_for_selector("#timeline button.report-item")
    items = page.locator("#timeline button.report-item")
    assert items.count() == 2
    assert "fault" in items.nth(0).inner_text() and "healthy" in items.nth(1).inner_text()
    items.nth(0).click()
    page.wait_for_selector(".cause-card")
    card = page.locator(".cause-card").inner_text()
    assert "payment host unreachable from lane-1" in card
    assert "Call the store's ISP about the uplink" in card and "Switch the router to the 4G backup" in card
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "collector-page-desktop.png"), full_page=True)

    # Report text is shown as text, never run as markup.
    page.click("button.terminal[data-terminal=lane-x]")
    page.wait_for_selector("#timeline button.report-item")
    page.locator("#timeline button.report-item").first.click()
    page.wait_for_selector(".cause-card")
    assert XSS_EVIDENCE in page.locator(".cause-card").inner_text()
    assert XSS_SITE in page.locator("#sites").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#sites img, .cause-card script, .cause-card b").count() == 0
    assert errors == []
    context.close()


@pytest.mark.chromium
def test_fleet_page_reads_on_a_phone_without_sideways_scrolling(fleet, browser):
    f = fleet()
    _seed(f)
    operator = f.operator("alice")
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(f.url + "/signin")
    page.fill("#token", "a-wrong-token")
    page.click("button[type=submit]")
    assert "Unknown token." in page.locator(".error").inner_text()
    page.screenshot(path=str(ARTIFACTS / "collector-signin-phone.png"))
    page.fill("#token", operator)
    page.click("button[type=submit]")
    page.wait_for_selector(".incident")
    page.wait_for_selector("#chart svg")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "collector-page-phone.png"), full_page=True)
    page.click("button.terminal[data-terminal=lane-3]")
    page.wait_for_selector("#timeline button.report-item")
    page.locator("#timeline button.report-item").first.click()
    page.wait_for_selector(".cause-card")
    assert page.locator("#terminal").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "collector-page-phone-terminal.png"), full_page=False)
    context.close()
