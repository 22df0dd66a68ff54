"""The fleet page in headless Chromium: what an operator sees of a fleet of 5,000 terminals in 500 sites,
on a desk and on a phone, in English and in Chinese.

Screenshots are kept in ``tests/artifacts/`` for a person to look at. How fast the page is ready is
measured by bench/collector_bench.py, never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from labs import bigfleet
from labs.collector_fixtures import ARTIFACTS, signed_in_page
from labs.collectorlab import make_report
from labs.helpers import wait_for

XSS_SITE = '<img src=x onerror="window.__xss=1">'
XSS_ID_EVIDENCE = "<script>window.__xss=2</script>"
REPO = Path(__file__).resolve().parent.parent
RLO_SITE = "\u202estore-rtl"
DESK = {"width": 1600, "height": 1000}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _big_fleet(f) -> bigfleet.BigFleet:
    """5,000 terminals in 500 sites (25 failing, 25 silent, written in bulk), and a site incident of
    three more terminals at store-042, posted as terminals post."""
    built = bigfleet.build(f.storage, now=time.time(), terminals=5000, sites=500, faulty=25, silent=25)
    for lane in range(3):
        token = f.terminal(f"wan-{lane}", "store-042")
        assert f.post(token, make_report(f"wan-{lane}", "store-042", cause="network.wan")).status_code == 201
    return built


def _open(browser, f, operator: str, **context):
    """A signed-in page, the page's errors collected in ``page.errors``."""
    ARTIFACTS.mkdir(exist_ok=True)
    return signed_in_page(browser, f.url, operator, **context)


def _until(page, condition: str, timeout: float = 15) -> None:
    """Wait until a JavaScript function of the page returns true (page.wait_for_function would eval a
    string, which the page's Content-Security-Policy refuses)."""
    assert wait_for(lambda: page.evaluate(condition), timeout, interval=0.1), condition


def _ids(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => r.dataset.terminal)")


@SQLITE
@pytest.mark.chromium
def test_fleet_page_shows_every_fault_and_silent_terminal_of_five_thousand_first_and_sites_as_summary_rows(fleet, browser):
    f = fleet(silent_after_min=15)
    built = _big_fleet(f)
    page = _open(browser, f, f.operator("alice"), viewport=DESK)

    assert page.locator("main h2").first.inner_text() == "Open incidents"
    incident = page.locator(".incident").inner_text()
    assert "The payment host is unreachable beyond the local network" in incident and "network.wan" in incident
    assert "site store-042" in incident and "3 terminals" in incident
    # Every faulty and silent terminal is listed, faults first: none is lost among the 5,000.
    attention = _ids(page, "#attention li.trow")
    wanted = set(built.faulty) | set(built.silent) | {"wan-0", "wan-1", "wan-2"}
    assert set(attention) == wanted
    assert page.locator("#attention-count").inner_text() == str(len(wanted))
    faults = len(built.faulty) + 3
    assert all("s-fault" in c for c in page.eval_on_selector_all("#attention li.trow", "r => r.map(x => x.className)")[:faults])
    row = page.locator(f"#attention li.trow[data-terminal='{next(iter(built.faulty))}']")
    cause = built.faulty[next(iter(built.faulty))]
    assert row.locator(".cause-id").inner_text() == cause and row.locator(".cause-title").inner_text() != cause
    assert row.locator("a.tid").get_attribute("href") == f"/terminals/{next(iter(built.faulty))}"
    assert "28 fault" in page.locator("#totals").inner_text() and "500 sites" in page.locator("#totals").inner_text()

    # Sites are summary rows, failing ones first, a page of them at a time; one opens on demand.
    sites = page.locator("#sites > details.site")
    assert sites.count() == 100 and page.locator("#sites > button.more").is_visible()
    assert page.locator("#site-count").inner_text() == "500"
    first = sites.first
    assert "has-fault" in first.get_attribute("class") and "fault" in first.locator(".chips").inner_text()
    assert first.locator("li.trow").count() == 0  # closed: its terminals are not fetched yet
    first.locator("summary").click()
    first.locator("li.trow").first.wait_for()
    site = first.get_attribute("data-site")
    assert set(_ids(page, "#sites > details.site[open] li.trow")) == {t for t, s in built.site_of.items() if s == site} | (
        {"wan-0", "wan-1", "wan-2"} if site == "store-042" else set())

    # The width of a desk: incidents and causes side by side, the whole window used.
    incidents_box, causes_box = page.locator(".incidents-box").bounding_box(), page.locator(".causes-box").bounding_box()
    assert causes_box["x"] > incidents_box["x"] + incidents_box["width"] - 1
    assert page.locator("main").bounding_box()["width"] > 0.95 * DESK["width"]
    page.screenshot(path=str(ARTIFACTS / "collector-page-desktop.png"), full_page=False)

    # A report arriving now shows up without a reload, its site still open.
    token = f.terminal("late-1", site)
    assert f.post(token, make_report("late-1", site, cause="disk.full")).status_code == 201
    page.wait_for_selector("#attention li.trow[data-terminal='late-1']", timeout=15_000)
    page.wait_for_selector("#sites > details.site[open] li.trow[data-terminal='late-1']", timeout=15_000)
    assert page.errors == []


@SQLITE
@pytest.mark.chromium
def test_the_bench_times_every_api_call_the_fleet_page_makes_when_it_loads(fleet, browser):
    """bench/collector_bench.py gives the p95 of each call the page makes: a call it leaves out is a
    cost nobody measures."""
    f = fleet()
    built = bigfleet.build(f.storage, now=time.time(), terminals=200, sites=20, faulty=5, silent=5, at_risk=5)
    page = _open(browser, f, f.operator("alice"), viewport=DESK)
    made: list[str] = []
    page.on("request", lambda request: made.append(request.url))
    page.reload()
    page.wait_for_selector("body[data-ready]")
    _until(page, "() => document.querySelectorAll('#risks li.risk').length > 0")  # the seeded risks are drawn
    spec = importlib.util.spec_from_file_location("collector_bench", REPO / "bench" / "collector_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.FLEET["at_risk"] > 0  # the bench's fleet has risks, so that the risks call has rows to read

    def call(url: str) -> tuple[str, frozenset]:
        parts = urlsplit(url)
        return parts.path, frozenset(parse_qsl(parts.query))

    loaded = {call(url) for url in made if urlsplit(url).path.startswith("/api/v1/")}
    timed = {call(f.url + path) for _, path in bench._page_calls(built)}
    assert {path for path, _ in loaded} >= {"/api/v1/incidents", "/api/v1/sites", "/api/v1/terminals", "/api/v1/risks"}
    assert loaded - timed == set()


@SQLITE
@pytest.mark.chromium
def test_fleet_page_searches_and_filters_on_the_server_by_terminal_site_cause_and_verdict(fleet, browser):
    f = fleet()
    built = _big_fleet(f)
    page = _open(browser, f, f.operator("alice"), viewport=DESK)
    page.fill("#q", "lane-0450")  # ten terminals: lane-04500 … lane-04509
    _until(page, "() => document.getElementById('attention-heading').textContent === 'Matching terminals'")
    _until(page, "() => document.querySelectorAll('#attention li.trow').length === 10")
    assert sorted(_ids(page, "#attention li.trow")) == [f"lane-0450{n}" for n in range(10)]
    assert page.locator("#site-count").inner_text() == "10"
    assert "#q=lane-0450" in page.url

    page.fill("#q", "store-123")  # a site: its ten terminals
    _until(page, "() => document.querySelectorAll('#sites > details.site').length === 1")
    assert page.locator("#sites > details.site").get_attribute("data-site") == "store-123"
    page.click("#filters button[type=reset]")
    _until(page, "() => document.getElementById('attention-heading').textContent === 'Faults and silent terminals'")

    cause = "network.dns"
    page.select_option("#cause", cause)
    _until(page, f"() => [...document.querySelectorAll('#attention li.trow .cause-id')].every(c => c.textContent === '{cause}')"
                 " && document.querySelectorAll('#attention li.trow').length > 0")
    assert set(_ids(page, "#attention li.trow")) == {t for t, c in built.faulty.items() if c == cause}
    assert "network.dns" in page.locator("#cause option:checked").inner_text()  # the title, with its id beside it
    page.select_option("#cause", "")
    page.select_option("#state", "silent")
    _until(page, f"() => document.querySelectorAll('#attention li.trow').length === {len(built.silent)}")
    assert set(_ids(page, "#attention li.trow")) == set(built.silent)
    assert all(c == "silent" for c in page.locator("#attention li.trow .badge").all_inner_texts())
    # A click on a cause's bar filters by it.
    page.select_option("#state", "")
    page.locator("ul.bars button.bar", has_text="network.wan").click()
    _until(page, "() => document.getElementById('cause').value === 'network.wan'")
    _until(page, "() => [...document.querySelectorAll('#attention li.trow .cause-id')]"
                 ".every(c => c.textContent === 'network.wan')")
    assert page.errors == []


@SQLITE
@pytest.mark.chromium
def test_fleet_page_of_five_thousand_reads_on_a_phone_without_sideways_scrolling(fleet, browser):
    f = fleet()
    _big_fleet(f)
    operator = f.operator("alice")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(f.url + "/signin")
    page.fill("#token", "a-wrong-token")
    page.click("button[type=submit]")
    assert "Unknown token." in page.locator(".error").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collector-signin-phone.png"))
    page.fill("#token", operator)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("#sites > details.site").first.locator("summary").click()
    page.locator("#sites > details.site[open] li.trow").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "collector-page-phone.png"), full_page=False)
    context.close()


@SQLITE
@pytest.mark.chromium
def test_fleet_page_speaks_chinese_to_a_chinese_browser_and_the_switch_to_english_keeps_the_filters(fleet, browser):
    f = fleet()
    _big_fleet(f)
    operator = f.operator("alice")
    context = browser.new_context(locale="zh-CN", viewport=DESK)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f.url + "/signin")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("label[for=token]").inner_text() == "运维人员令牌"
    page.fill("#token", "a-wrong-token")
    page.click("form[action='/signin'] button")
    assert page.locator(".error").inner_text() == "未知的令牌。"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collector-signin-zh.png"))
    page.fill("#token", operator)
    page.click("form[action='/signin'] button")
    page.wait_for_selector("body[data-ready]")

    assert page.title() == "posdiag 终端总览"
    assert page.locator("main h2").all_inner_texts()[:2] == ["当前事件", "故障和失联的终端 53"]
    assert page.locator(".signout button").inner_text() == "退出登录"
    assert page.get_by_role("button", name="中文").get_attribute("aria-pressed") == "true"
    incident = page.locator(".incident").inner_text()
    assert "服务中断：本地网络以外无法到达支付主机" in incident and "network.wan" in incident
    assert "门店 store-042" in incident and "3 台终端" in incident and "始于" in incident
    assert page.locator("#q").get_attribute("placeholder") == "终端或门店"
    assert page.locator("#state option[value=silent]").inner_text() == "失联"
    assert "故障" in page.locator("#attention li.trow .badge").first.inner_text()
    assert page.locator("#updated").inner_text().startswith("更新于")
    page.screenshot(path=str(ARTIFACTS / "collector-page-zh.png"), full_page=False)

    # The switch: English from now on, for this browser, with the same filters.
    page.select_option("#state", "fault")
    _until(page, "() => location.hash === '#state=fault'")
    page.get_by_role("button", name="English").click()
    _until(page, "() => document.documentElement.lang === 'en'")
    page.wait_for_selector("body[data-ready]")
    assert page.url.endswith("#state=fault") and page.locator("#state").input_value() == "fault"
    assert page.locator("main h2").first.inner_text() == "Open incidents"
    assert "The payment host is unreachable beyond the local network" in page.locator(".incident").inner_text()
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.locator("main h2").first.inner_text() == "Open incidents"
    assert errors == []
    context.close()


@SQLITE
@pytest.mark.chromium
def test_a_malformed_fragment_does_not_stop_the_page_polling(fleet, browser):
    f = fleet()
    token = f.terminal("lane-1", "store-1")
    assert f.post(token, make_report("lane-1", "store-1")).status_code == 201
    operator = f.operator("alice")
    context = browser.new_context(viewport=DESK)
    signin = context.new_page()
    signin.goto(f.url + "/signin")
    signin.fill("#token", operator)
    signin.click("form[action='/signin'] button")
    signin.wait_for_url(f.url + "/")
    page = context.new_page()  # a fresh load with the fragment (not a jump within the signed-in page)
    page.goto(f.url + "/#t=%E0%A4%A")
    later = f.terminal("lane-2", "store-1")
    assert f.post(later, make_report("lane-2", "store-1", cause="disk.full")).status_code == 201
    page.get_by_text("lane-2", exact=True).first.wait_for(timeout=15_000)  # drawn by a poll after the page loaded


#: The page's own word after a site's name, drawn left to right? (the first letter left of the last one)
READS_FORWARD = """site => {
  const all = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let label = all.nextNode();
  while (label && !label.textContent.includes(site)) label = all.nextNode();
  const block = label.parentElement.closest('summary, h3, p, li');
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.textContent.search(/terminals/);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at); range.setEnd(node, at + 1);
    const first = range.getBoundingClientRect();
    range.setStart(node, at + 8); range.setEnd(node, at + 9);
    const last = range.getBoundingClientRect();
    return first.left < last.left;
  }
  throw new Error('no "terminals" after the site name');
}"""


@SQLITE
@pytest.mark.chromium
def test_a_right_to_left_override_in_a_site_name_cannot_reverse_the_pages_own_words(fleet, browser):
    f = fleet()
    for lane in range(2):
        token = f.terminal(f"rtl-{lane}", RLO_SITE)
        assert f.post(token, make_report(f"rtl-{lane}", RLO_SITE, cause="network.wan")).status_code == 201
    page = _open(browser, f, f.operator("alice"), viewport=DESK)
    page.get_by_text("2 terminals").first.wait_for()
    assert page.evaluate(READS_FORWARD, RLO_SITE)
    assert page.errors == []


@SQLITE
@pytest.mark.chromium
def test_terminal_ids_and_site_names_are_shown_as_text_never_run_as_markup(fleet, browser):
    f = fleet()
    token = f.terminal("lane-x")  # no site registered: the report names one
    assert f.post(token, make_report("lane-x", XSS_SITE, cause="reader.substituted")).status_code == 201
    page = _open(browser, f, f.operator("alice"), viewport=DESK)
    assert XSS_SITE in page.locator("#attention").inner_text() and XSS_SITE in page.locator("#sites").inner_text()
    page.locator("#sites > details.site").first.locator("summary").click()
    page.locator("#sites > details.site[open] li.trow").first.wait_for()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main script").count() == 0
    assert page.errors == []


@pytest.mark.parametrize(("header", "lang"), [
    ("zh;q=1, en;q=0.9", "zh_CN"), ("zh;q=1.001, en;q=0.1", "en"), ("en;q=1, zh", "en"), ("zh;q=0.5, en;q=0.6", "en"),
    ("zh;q=0.001", "zh_CN"), ("zh;q=0", None), ("zh;q=-0.5", None), ("zh;q=nan", None), ("zh;q=abc, en;q=0.5", "en"),
    ("zh;Q=0.4, en;q=0.5", "en"),
    ("de," * 63 + "zh", "zh_CN"), ("de," * 64 + "zh", None), ("*", None), ("", None)])
def test_a_browsers_language_is_the_one_it_prefers_most_of_its_first_64_with_q_from_0_exclusive_to_1(header, lang):
    """RFC 9110: q from 0 (not acceptable) to 1, ties to the first listed; a header is read up to its
    64th entry, a list, not an essay."""
    from posdiag.collector.page import from_accept_language

    assert from_accept_language(header) == lang


@SQLITE
def test_signin_tells_a_blank_an_oversized_and_a_revoked_terminals_token_apart(fleet):
    f = fleet()
    token = f.terminal("lane-1", "store-1")
    assert f.storage.revoke_terminal("lane-1")

    def signin(body: str) -> requests.Response:
        return requests.post(f.url + "/signin", data=body, allow_redirects=False, timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})

    revoked = signin(f"token={token}")
    assert revoked.status_code == 403 and "terminals cannot sign in" in revoked.text
    assert f.get("/", token).status_code == 403 and f.get("/api/v1/terminals", token).status_code == 403
    blank = signin("token=+++")
    assert blank.status_code == 400 and "Paste your operator token." in blank.text
    assert signin("token=" + "x" * 4090).status_code == 401  # a form of 4096 bytes: read, an unknown token
    oversized = signin("token=" + "x" * 4091)
    assert oversized.status_code == 400 and "That is not a token." in oversized.text


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
    chosen = browser.post(f.url + "/lang", data={"lang": "zh_CN", "next": "/signin"}, allow_redirects=False, timeout=10)
    assert chosen.status_code == 303 and browser.cookies["lang"] == "zh_CN"
    assert '<html lang="zh-CN">' in browser.get(f.url + "/signin", headers={"Accept-Language": "en"}, timeout=10).text
    switched = browser.post(f.url + "/lang", data={"lang": "en", "next": "/signin"}, allow_redirects=False, timeout=10)
    assert switched.status_code == 303 and switched.headers["location"] == "/signin"
    assert browser.cookies["lang"] == "en"
    flags = {part.strip().lower() for part in switched.headers["set-cookie"].split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags and "secure" not in flags  # plain http on loopback here
    assert f"max-age={400 * 86400}" in flags  # kept as long as a browser keeps any cookie (RFC 6265bis: 400 days)
    assert '<html lang="en">' in browser.get(f.url + "/signin", headers={"Accept-Language": "zh-CN"}, timeout=10).text
    # Only a page itself: a part of one ("/sign", a 404) or a path without its slash is not a way back.
    for wanted in ("https://evil.example/", "//evil.example/", "/api/v1/terminals", "/sign", "signin", "in"):
        away = requests.post(f.url + "/lang", data={"lang": "zh_CN", "next": wanted}, allow_redirects=False, timeout=10)
        assert away.headers["location"] == "/", wanted
    for unknown in ({"lang": "klingon"}, {"next": "/signin"}):  # a language posdiag does not speak, or none at all
        answer = requests.post(f.url + "/lang", data=unknown, allow_redirects=False, timeout=10)
        assert answer.status_code == 303 and answer.cookies["lang"] == "en", unknown
    kept = requests.post(f.url + "/lang", data={"lang": "en", "next": "/#q=store-1&state=fault"}, allow_redirects=False,
                         timeout=10)
    assert kept.headers["location"] == "/#q=store-1&state=fault"


def test_every_marked_text_of_the_pages_reaches_the_chinese_page():
    """The extractor (packaging/catalogues.py) and the page (collector/page.py) read the markup the same
    way: each message the catalogue holds for the templates and scripts is what the page substitutes."""
    import catalogues
    from posdiag.collector import page
    from posdiag.core import i18n
    from posdiag.core.causes import titles

    extracted = [m for m in catalogues.extract() if m.id]
    t = i18n.translator("zh_CN")
    for name, scripts in (("index.html", ["common.js", "app.js"]), ("signin.html", []),
                          ("terminal.html", ["common.js", "terminal.js"])):
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
    assert messages["Matching terminals"] == "符合条件的终端" and messages["{n} terminal"] == ["{n} 台终端", "{n} 台终端"]
    causes = json.loads(re.search(r'id="causes">(.*?)</script>', page._page("index.html", "zh_CN"), re.S).group(1))
    assert causes == titles("zh_CN") and causes["network.wan"] != titles("en")["network.wan"]


def test_the_pages_carry_their_chinese_as_text_and_the_switch_returns_the_signin_page_to_itself():
    """The data blocks are UTF-8 (an escaped ``\\uXXXX`` per character would triple the page); the
    sign-in page's switch comes back to the sign-in page, every other page's to the fleet page."""
    from posdiag.collector import page

    chinese = page._page("index.html", "zh_CN")
    assert '"符合条件的终端"' in chinese and "\\u7b26" not in chinese
    assert '<input type="hidden" name="next" value="/signin">' in page._page("signin.html", "en")
    assert '<input type="hidden" name="next" value="/">' in page._page("index.html", "en")


def test_only_marked_text_is_translated_and_other_elements_stay_as_written():
    """An unmarked element keeps its words and its white space, and an empty marked one stays empty (a
    lookup of no text would fetch the catalogue's header)."""
    from posdiag.collector.markup import translate_markup
    from posdiag.core import i18n

    t = i18n.translator("zh_CN")
    page = '<h2 data-tr>Language</h2><b>Language</b><pre>a  b</pre><span data-tr></span><i data-tr-title="Language"></i>'
    assert translate_markup(page, t) == (f'<h2 data-tr>{t.tr("Language")}</h2><b>Language</b><pre>a  b</pre>'
                                         f'<span data-tr></span><i title="{t.tr("Language")}"></i>')
    assert t.tr("Language") != "Language"


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
