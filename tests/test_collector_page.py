"""The fleet page in headless Chromium: what an operator sees, on a desk and on a phone, in English
and in Chinese.

Screenshots are kept in ``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
import requests
from labs.collector_fixtures import ARTIFACTS
from labs.collectorlab import make_report

XSS_SITE = '<img src=x onerror="window.__xss=1">'
XSS_EVIDENCE = "<script>window.__xss=2</script> reader said <b>hi</b>"
REPO = Path(__file__).resolve().parent.parent
#: what a terminal speaking Chinese writes about a dead uplink (the collector stores it as written)
ZH_TITLE = "网络连接中断：门店到支付主机的线路不通"
ZH_EVIDENCE = "网关 10.42.0.1 有响应，支付主机无响应"
ZH_STEP = "联系门店的网络运营商检查线路"

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _seed(f) -> dict[str, str]:
    now = time.time()
    tokens = {}
    for i in range(1, 6):
        tokens[f"lane-{i}"] = f.terminal(f"lane-{i}", "store-042")
        if i == 1:
            assert f.post(tokens["lane-1"], make_report("lane-1", "store-042", started=now - 3600, verdict="healthy",
                                                        cause="none")).status_code == 201
        # lane-1 runs this agent (its causes say how certain they are); the others an older one
        report = make_report(f"lane-{i}", "store-042", started=now - 400 + 60 * i, cause="network.wan",
                             evidence=["gateway 10.42.0.1 answers", f"payment host unreachable from lane-{i}"],
                             remediation=["Call the store's ISP about the uplink", "Switch the router to the 4G backup"],
                             certainty=0.97 if i == 1 else None)
        assert f.post(tokens[f"lane-{i}"], report).status_code == 201
    for tid, verdict, cause in (("till-a", "healthy", "none"), ("till-b", "degraded", "network.degraded")):
        tokens[tid] = f.terminal(tid, "store-007")
        assert f.post(tokens[tid], make_report(tid, "store-007", verdict=verdict, cause=cause)).status_code == 201
    f.terminal("ghost", "store-013")  # registered, never heard from: silent
    tokens["lane-x"] = f.terminal("lane-x")
    assert f.post(tokens["lane-x"], make_report("lane-x", XSS_SITE, cause="reader.substituted", evidence=[XSS_EVIDENCE],
                                                remediation=["<i>unplug</i> the reader"])).status_code == 201
    return tokens


@SQLITE
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
    assert page.locator(".cause-card .certainty").inner_text() == "certain 97%"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "collector-page-desktop.png"), full_page=True)

    # Report text is shown as text, never run as markup.
    page.click("button.terminal[data-terminal=lane-x]")
    page.wait_for_selector("#timeline button.report-item")
    page.locator("#timeline button.report-item").first.click()
    page.wait_for_selector(".cause-card")
    assert XSS_EVIDENCE in page.locator(".cause-card").inner_text()
    assert page.locator(".cause-card .certainty").count() == 0  # an older agent's report: its confidence alone
    assert XSS_SITE in page.locator("#sites").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#sites img, .cause-card script, .cause-card b").count() == 0
    assert errors == []
    context.close()


@SQLITE
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


def _chinese_report(terminal: str, site: str) -> dict:
    report = make_report(terminal, site, cause="network.wan", evidence=[ZH_EVIDENCE], remediation=[ZH_STEP], certainty=0.9)
    report["lang"] = "zh_CN"
    report["diagnosis"]["causes"][0]["title"] = ZH_TITLE
    report["probes"][0]["summary"] = "到支付主机的 TCP 连接"
    return report


@SQLITE
@pytest.mark.chromium
def test_fleet_page_speaks_chinese_to_a_chinese_browser_and_the_switch_to_english_sticks(fleet, browser):
    f = fleet()
    _seed(f)
    zh = f.terminal("lane-zh", "store-042")
    assert f.post(zh, _chinese_report("lane-zh", "store-042")).status_code == 201
    operator = f.operator("alice")
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f.url + "/signin")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("label[for=token]").inner_text() == "运维人员令牌"
    page.fill("#token", "a-wrong-token")
    page.click("form[action='/signin'] button")
    assert page.locator(".error").inner_text() == "未知的令牌。"
    assert page.locator("form[action='/signin'] button").inner_text() == "登录"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collector-signin-zh.png"))
    page.fill("#token", operator)
    page.click("form[action='/signin'] button")
    page.wait_for_url(f.url + "/")
    page.wait_for_selector(".incident")
    errors.clear()  # the wrong token's 401 is the console's one complaint so far

    assert page.title() == "posdiag 终端总览"
    assert page.locator("main h2").all_inner_texts()[:4] == ["当前事件", "有风险的终端", "全网主要原因", "各门店终端"]
    assert page.locator(".signout button").inner_text() == "退出登录"
    assert page.get_by_role("button", name="中文").get_attribute("aria-pressed") == "true"
    incident = page.locator(".incident").inner_text()
    assert "门店 store-042" in incident and "6 台终端" in incident and "始于" in incident
    assert "network.wan：6 台终端" in page.locator("#chart svg title").all_text_contents()
    assert "从未" in page.locator("button.terminal[data-terminal=ghost]").inner_text()
    assert "失联" in page.locator("button.terminal[data-terminal=ghost]").inner_text()
    assert page.locator("#updated").inner_text().startswith("更新于")

    page.click("button.terminal[data-terminal=lane-zh]")
    page.wait_for_selector("#timeline button.report-item")
    assert "故障" in page.locator("#timeline button.report-item").inner_text()
    page.locator("#timeline button.report-item").click()
    page.wait_for_selector(".cause-card")
    card = page.locator(".cause-card")
    assert ZH_TITLE in card.inner_text() and ZH_EVIDENCE in card.inner_text() and ZH_STEP in card.inner_text()
    assert card.locator("h5").all_text_contents() == ["依据", "处理步骤"]
    assert card.locator(".certainty").inner_text() == "确定度 90%"
    assert page.locator(".report-detail h3").inner_text().endswith("的报告 故障")
    page.screenshot(path=str(ARTIFACTS / "collector-page-zh.png"), full_page=True)

    # The switch: English from now on, for this browser, whatever it asks for; the open terminal stays open.
    page.get_by_role("button", name="English").click()
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_selector("#timeline button.report-item")
    assert page.url.endswith("#t=lane-zh")
    assert page.locator("main h2").first.inner_text() == "Open incidents"
    page.reload()
    page.wait_for_selector(".incident")
    assert page.locator("main h2").first.inner_text() == "Open incidents"
    assert "site store-042" in page.locator(".incident").inner_text()
    # A report keeps the language it was written in; the page around it is English.
    page.locator("#timeline button.report-item").click()
    page.wait_for_selector(".cause-card")
    assert ZH_TITLE in page.locator(".cause-card").inner_text()
    assert page.locator(".cause-card .cause-title").get_attribute("lang") == "zh-CN"
    assert page.locator(".cause-card h5").all_text_contents() == ["Evidence", "Remediation"]
    assert errors == []  # the messages block is data, not script: the CSP has nothing to refuse
    context.close()


@SQLITE
def test_pages_choose_their_language_by_cookie_then_accept_language(fleet):
    f = fleet()
    cases = [("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,en;q=0.9,zh;q=0.5", "en"), ("de-DE,fr;q=0.9", "en"),
             ("de;q=1, zh;q=0.7, en;q=0.3", "zh-CN"), ("en;q=0.2, zh-Hans;q=0.8", "zh-CN"), ("zh-TW,zh-Hant;q=0.9", "en"),
             ("zh;q=0, en", "en"), ("zh;q=abc, en;q=0.5", "en"), ("*", "en"), ("", "en")]
    for header, lang in cases:
        answer = requests.get(f.url + "/signin", headers={"Accept-Language": header}, timeout=10)
        assert f'<html lang="{lang}">' in answer.text, header
        assert answer.headers["vary"] == "Accept-Language, Cookie"
    chinese = requests.post(f.url + "/signin", data={"token": "nope"}, headers={"Accept-Language": "zh-CN"}, timeout=10)
    assert chinese.status_code == 401 and "未知的令牌。" in chinese.text and "Unknown token." not in chinese.text
    terminal = f.terminal("lane-1")
    refused = requests.get(f.url + "/", headers={"Authorization": f"Bearer {terminal}", "Accept-Language": "zh"}, timeout=10)
    assert refused.status_code == 403 and "终端令牌不能打开终端总览页面" in refused.text

    # The switch's cookie beats the browser, and it sends the browser back only to the collector's own pages.
    browser = requests.Session()
    switched = browser.post(f.url + "/lang", data={"lang": "en", "next": "/signin"}, allow_redirects=False, timeout=10)
    assert switched.status_code == 303 and switched.headers["location"] == "/signin"
    assert browser.cookies["lang"] == "en"
    assert '<html lang="en">' in browser.get(f.url + "/signin", headers={"Accept-Language": "zh-CN"}, timeout=10).text
    for wanted in ("https://evil.example/", "//evil.example/", "/api/v1/terminals"):
        away = requests.post(f.url + "/lang", data={"lang": "zh_CN", "next": wanted}, allow_redirects=False, timeout=10)
        assert away.headers["location"] == "/", wanted
    assert requests.post(f.url + "/lang", data={"lang": "klingon"}, allow_redirects=False, timeout=10).cookies["lang"] == "en"


def test_every_marked_text_of_the_pages_reaches_the_chinese_page():
    """The extractor (packaging/catalogues.py) and the page (collector/page.py) read the markup the same
    way: each message the catalogue holds for the templates and app.js is what the page substitutes."""
    sys.path.insert(0, str(REPO / "packaging"))
    import catalogues
    from posdiag.collector import page
    from posdiag.core import i18n
    from posdiag.core.causes import titles

    extracted = [m for m in catalogues.extract() if m.id]
    t = i18n.translator("zh_CN")
    for name, scripts in (("index.html", ["app.js"]), ("signin.html", []), ("terminal.html", ["common.js", "terminal.js"])):
        rendered = page._page(name, "zh_CN")
        wanted = [m.id for m in extracted if any(path == f"collector/static/{name}" for path, _ in m.locations)]
        assert wanted and all(html_escape(t.gettext(message)) in rendered for message in wanted), name
        assert not re.search(r"data-tr-\w+=", rendered)  # every marked attribute became its real one
        block = re.search(r'<script type="application/json" id="messages">(.*?)</script>', rendered, re.S)
        messages = json.loads(block.group(1)) if block else {}
        in_js = {m.id if isinstance(m.id, str) else m.id[0] for m in extracted
                 if any(path in [f"collector/static/{script}" for script in scripts] for path, _ in m.locations)}
        assert set(messages) == in_js, name  # each page carries its own scripts' messages, no more
    messages = json.loads(re.search(r'id="messages">(.*?)</script>', page._page("index.html", "zh_CN"), re.S).group(1))
    assert messages["Evidence"] == "依据" and messages["{n} terminal"] == ["{n} 台终端", "{n} 台终端"]
    causes = json.loads(re.search(r'id="causes">(.*?)</script>', page._page("terminal.html", "zh_CN"), re.S).group(1))
    assert causes == titles("zh_CN") and causes["network.wan"] != titles("en")["network.wan"]


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
