"""A terminal's own page in headless Chromium, end to end with the real agent: an operator presses
"Diagnose now" or "Get bundle", the till's daemon fetches the request, answers, and the page shows
the answer when it arrives. In English on a desk, in Chinese on a phone.

Screenshots are kept in ``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import io
import tarfile
import time

import pytest
import requests
from labs.collector_fixtures import ARTIFACTS, signed_in_page
from labs.collectorlab import make_report
from labs.remotelab import HelpDesk
from posdiag.core.causes import titles

FULL_DISK = {"disk": {"min_free_mb": 10_000_000}}  # every sweep finds its disk "full": a fault with steps
XSS = '<img src=x onerror="window.__xss=1">'




def open_page(browser, d: HelpDesk, terminal: str, **context):
    """A signed-in operator's browser on the terminal's page; the errors it logs are collected."""
    ctx = browser.new_context(ignore_https_errors=True, accept_downloads=True, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{d.url}/terminals/{terminal}")
    assert page.url.endswith("/signin")
    page.fill("#token", d.operator)
    page.click("form[action='/signin'] button")
    page.wait_for_url(d.url + "/")
    page.goto(f"{d.url}/terminals/{terminal}")
    page.wait_for_selector("#report .cause-card")
    return ctx, page, errors


@pytest.mark.chromium
def test_diagnose_now_shows_the_tills_remote_report_when_it_arrives_and_get_bundle_downloads_it_masked(desk, browser):
    d = desk()
    till = d.till("lane-07", **FULL_DISK)
    token = (d.folder / "lane-07" / "token").read_text().strip()
    ctx, page, errors = open_page(browser, d, "lane-07", viewport={"width": 1366, "height": 900})

    assert page.title() == "lane-07 · posdiag terminal"
    assert page.locator("#terminal-name").inner_text() == "lane-07"
    assert "site store-42" in page.locator("#terminal-facts").inner_text()
    top = page.locator("#report .cause-card.top")
    assert top.locator(".cause-title").inner_text() == titles("en")["disk.full"]
    assert top.locator("code").first.inner_text() == "disk.full"
    assert top.locator("ul.evidence li").count() >= 1 and top.locator("ol.remediation li").count() >= 1
    assert top.locator("h5").all_text_contents()[0] == "Why" and "What to do" in top.locator("h5").all_text_contents()
    assert top.locator(".certainty").inner_text().startswith("certain ")  # this agent says how sure it is
    assert "at boot" in page.locator("#report").inner_text()

    page.click("#ask-diagnose")
    page.wait_for_selector(".ask-state[data-state=done]", timeout=60_000)
    asked = d.request(page.locator(".ask-state").get_attribute("data-request"))
    assert asked["state"] == "done" and asked["requested_by"] == "alice"
    report = d.get(f"/api/v1/reports/{asked['report_id']}").json()
    assert report["trigger"] == "remote" and report["request_id"] == asked["request_id"]
    page.wait_for_function(f"document.getElementById('report').dataset.report === '{asked['report_id']}'")
    shown = page.locator("#report").inner_text()
    assert "The terminal's answer to your request" in shown and "asked from here" in shown
    assert page.locator(f"#requests li[data-request='{asked['request_id']}'] .badge").inner_text() == "done"
    page.wait_for_function("document.querySelector('#history').innerText.includes('2 reports')")
    assert page.locator("#strip svg rect").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "terminal-page-desktop.png"), full_page=True)

    page.click("#ask-bundle")
    link = page.wait_for_selector(".ask-state[data-state=done] a.download", timeout=90_000)
    assert "Download the bundle (" in link.inner_text()
    with page.expect_download() as download:
        link.click()
    body = download.value.path().read_bytes()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert "terminal: lane-07" in members["posdiag-bundle/summary.txt"]
    assert not any(token in text for text in members.values())  # masked on the till
    assert download.value.suggested_filename.startswith("posdiag-bundle-lane-07-")
    assert errors == []
    assert token not in till.output()
    ctx.close()


@pytest.mark.chromium
def test_the_terminals_page_speaks_chinese_on_a_phone_and_says_when_a_request_expired(desk, browser):
    d = desk("--request-expiry-min", "0.05")  # 3 s
    d.till("lane-07", server={"poll_s": 0}, **FULL_DISK)  # this till does not fetch requests
    ctx, page, errors = open_page(browser, d, "lane-07", locale="zh-CN", viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#h-diagnosis").inner_text() == "最近一次诊断"
    assert page.locator("#ask-diagnose").inner_text() == "立即诊断" and page.locator("#ask-bundle").inner_text() == "获取支持包"
    top = page.locator("#report .cause-card.top")
    # The till wrote its report in English; the page names the cause in the page's language, by the
    # catalogue, and keeps the till's evidence as written (marked English).
    assert top.locator(".cause-title").inner_text() == titles("zh_CN")["disk.full"]
    assert top.locator("ul.evidence").get_attribute("lang") == "en"
    assert top.locator("h5").all_text_contents()[0] == "依据"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.click("#ask-bundle")
    page.wait_for_selector(".ask-state[data-state=expired]", timeout=30_000)
    assert "未能及时领取：终端是否开机并在联络服务器？" in page.locator(".ask-state").inner_text()
    page.wait_for_function("document.querySelector('#requests .badge').innerText === '已过期'")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "terminal-page-phone-zh.png"), full_page=True)

    # The switch back to English stays on this terminal's page.
    page.get_by_role("button", name="English").click()
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.url == f"{d.url}/terminals/lane-07"
    page.wait_for_selector("#report .cause-card")
    assert page.locator("#h-diagnosis").inner_text() == "Latest diagnosis"
    assert errors == []
    ctx.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.chromium
def test_a_reports_text_on_the_terminals_page_is_text_and_causes_are_named_by_the_catalogue(fleet, browser):
    f = fleet()
    token = f.terminal("lane-x", "store-1")
    report = make_report("lane-x", "store-1", cause="reader.substituted", evidence=[XSS], remediation=["<b>unplug</b> it"])
    report["diagnosis"]["causes"][0]["title"] = f"Skimmer {XSS}"
    assert f.post(token, report).status_code == 201
    page = signed_in_page(browser, f.url, f.operator("alice"))
    page.goto(f.url + "/terminals/lane-x")
    page.wait_for_selector("#report .cause-card")
    card = page.locator("#report .cause-card")
    assert card.locator(".cause-title").inner_text() == titles("en")["reader.substituted"]
    assert XSS in card.inner_text() and "<b>unplug</b> it" in card.inner_text()
    assert page.locator("#report img, #report b").count() == 0
    assert page.evaluate("window.__xss") is None
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_terminals_page_is_for_signed_in_operators_and_names_a_missing_terminal(fleet):
    f = fleet()
    token = f.terminal("lane-1", "store-1")
    operator = f.operator("alice")
    assert f.get("/terminals/lane-1").status_code == 303  # to the sign-in page
    assert f.get("/terminals/lane-1", token).status_code == 403
    page = f.get("/terminals/lane-1", operator)
    assert page.status_code == 200 and '<span id="terminal-name">lane-1</span>' in page.text
    assert 'src="/static/terminal.js"' in page.text and "Content-Security-Policy" in page.headers
    missing = f.get("/terminals/no-such-till", operator)
    assert missing.status_code == 404 and "No terminal no-such-till is registered." in missing.text
    hostile = f.get("/terminals/%3Cscript%3Ealert(1)%3C%2Fscript%3E", operator)
    assert hostile.status_code == 404 and "<script>alert" not in hostile.text
    for back, expected in (("/terminals/lane-1", "/terminals/lane-1"), ("/terminals/lane-1/../../x", "/"),
                           ("/terminals//evil.example", "/")):
        switched = requests.post(f.url + "/lang", data={"lang": "zh_CN", "next": back}, allow_redirects=False, timeout=10)
        assert switched.headers["location"] == expected, back


@pytest.mark.chromium
def test_a_fault_dated_ahead_is_not_the_latest_diagnosis_once_a_healthy_report_follows(fleet, browser):
    f = fleet()
    token = f.terminal("lane-2", "store-1")
    operator = f.operator("alice")
    ahead = make_report("lane-2", "store-1", started=time.time() + 20 * 3600, cause="network.wan")  # a clock 20 h fast
    assert f.post(token, ahead).status_code == 201
    healthy = make_report("lane-2", "store-1", verdict="healthy", cause="none")
    assert f.post(token, healthy).status_code == 201
    # The API says which report sets the terminal's state, and lists its reports in that order.
    terminal = f.get("/api/v1/terminals/lane-2", operator).json()
    assert terminal["verdict"] == "healthy" and terminal["last_report_id"] == healthy["report_id"]
    listed = f.get("/api/v1/reports", operator, terminal="lane-2").json()["reports"]
    assert [r["report_id"] for r in listed] == [healthy["report_id"], ahead["report_id"]]

    page = signed_in_page(browser, f.url, operator)
    page.goto(f.url + "/terminals/lane-2")
    page.wait_for_selector("#report .verdict-line")
    assert page.locator("#report").get_attribute("data-report") == healthy["report_id"]
    assert page.locator("#report .verdict-line .badge").inner_text() == "healthy"
    assert page.locator("#history button.report-item").first.get_attribute("data-report") == healthy["report_id"]
    assert page.locator("#history button.report-item.selected").get_attribute("data-report") == healthy["report_id"]
    page.context.close()
