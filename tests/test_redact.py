"""The one redaction routine: every shape of card data and secret masked, and nothing a diagnosis
needs — time stamps, ids, counts, addresses, serial numbers — mistaken for one. Pure logic: no peer."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from posdiag.core import redact
from posdiag.core.redact import REDACTED, has_card_data, is_card_number, luhn, mask_config, mask_data, mask_text

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _nothing_remembered(monkeypatch):
    """Secrets remembered by other tests in this process (a token read) must not mask these lines."""
    monkeypatch.setattr(redact, "_known", set())


def with_check_digit(body: str) -> str:
    """``body`` and the one digit that makes it pass the Luhn check."""
    return next(body + d for d in "0123456789" if luhn(body + d))


UNIONPAY_19 = with_check_digit("621234567890123456")

#: (layout, as written in a line, the digits it holds, how it must come out)
PANS = [
    ("visa-bare", "4111111111111111", "4111111111111111", "411111******1111"),
    ("visa-13", "4222222222222", "4222222222222", "422222***2222"),
    ("mastercard-spaced", "5500 0000 0000 0004", "5500000000000004", "5500 00** **** 0004"),
    ("mastercard-2-series", "2223000048400011", "2223000048400011", "222300******0011"),
    ("amex-dashed", "3400-000000-00009", "340000000000009", "3400-00****-*0009"),
    ("amex-spaced-4-6-5", "3782 822463 10005", "378282246310005", "3782 82**** *0005"),
    ("diners-14", "3056 930902 5904", "30569309025904", "3056 93**** 5904"),
    ("discover", "6011-0009-9013-9424", "6011000990139424", "6011-00**-****-9424"),
    ("unionpay-19", UNIONPAY_19, UNIONPAY_19, UNIONPAY_19[:6] + "*" * 9 + UNIONPAY_19[-4:]),
    ("amex-in-threes", "378 282 246 310 005", "378282246310005", "378 282 *** **0 005"),
    ("visa-6-6-4-dashed", "411111-111111-1111", "4111111111111111", "411111-******-1111"),
    ("visa-tab-among-spaces", "4111 1111\t1111 1111", "4111111111111111", "4111 11**\t**** 1111"),
    ("visa-8-8", "41111111 11111111", "4111111111111111", "411111** ****1111"),
    ("visa-4-8-4", "4111 11111111 1111", "4111111111111111", "4111 11****** 1111"),
    ("visa-double-spaces", "4111  1111  1111  1111", "4111111111111111", "4111  11**  ****  1111"),
    ("visa-tabs", "4111\t1111\t1111\t1111", "4111111111111111", "4111\t11**\t****\t1111"),
    ("visa-dots", "4111.1111.1111.1111", "4111111111111111", "4111.11**.****.1111"),
    ("visa-slashes", "4111/1111/1111/1111", "4111111111111111", "4111/11**/****/1111"),
    ("mastercard-double-dashes", "5500--0000--0000--0004", "5500000000000004", "5500--00**--****--0004"),
    ("visa-full-width", "４１１１１１１１１１１１１１１１", "4111111111111111", "４１１１１１******１１１１"),
    ("visa-full-width-spaced", "４１１１ １１１１ １１１１ １１１１", "4111111111111111", "４１１１ １１** **** １１１１"),
]


def all_digits(text: str) -> str:
    """The digits of ``text`` as one run, full-width ones as ASCII: a PAN left whole shows in it."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit() or c == "*")


@pytest.mark.parametrize("written, digits, masked", [p[1:] for p in PANS], ids=[p[0] for p in PANS])
@pytest.mark.parametrize("where", ["{}", "pan={} code=2824 rc=05", "card: {}.", '{{"pan": "{}"}}', "PAN{}X",
                                   "/cards/{}/status"],
                         ids=["alone", "field", "sentence", "json", "glued-to-letters", "in-a-path"])
def test_a_card_number_keeps_its_first_six_and_last_four_digits(written, digits, masked, where):
    assert luhn(digits)
    out = mask_text(where.format(written))
    assert out == where.format(masked)
    assert digits not in all_digits(out)


@pytest.mark.parametrize("written, digits", [p[1:3] for p in PANS], ids=[p[0] for p in PANS])
def test_a_card_number_between_codes_is_masked_and_the_codes_kept(written, digits):
    """Numbers around a grouped PAN join its run of digits: any card-shaped stretch of the run that passes
    the Luhn check is masked too (more masked, never less), and a code before or after stays whole."""
    out = mask_text(f"code 2824 {written} 91")
    assert out.startswith("code 2824 ") and out.endswith(" 91")
    assert digits not in all_digits(out)
    assert out.endswith(f"{written[-4:]} 91")


def test_two_card_numbers_in_one_line_are_both_masked():
    assert mask_text("old 4111111111111111 new 5500 0000 0000 0004") == "old 411111******1111 new 5500 00** **** 0004"


def test_a_card_number_after_another_number_is_found_in_the_run():
    assert mask_text("txn 2824 4111 1111 1111 1111") == "txn 2824 4111 11** **** 1111"


def test_a_byte_count_of_a_terabyte_or_more_may_lose_its_middle_digits_as_a_card_would():
    """13 digits passing the Luhn check are a card's shape: a byte count that size (1 TB and more)
    that happens to pass loses its middle digits. Smaller counts are never touched."""
    assert luhn("2000398934016")
    assert mask_text("2000398934016 bytes") == "200039***4016 bytes"


TRACKS = [
    ("track1", "%B4000056655665556^PRIVACY/TESTER^2812101987654321000000?", "%B400005******5556^<redacted>?",
     ["PRIVACY/TESTER", "2812101987654321"]),
    ("track1-no-sentinels", "data B4000056655665556^TESTER/PRIVACY^28121019876543 rc=05",
     "data B400005******5556^<redacted> rc=05", ["TESTER/PRIVACY", "28121019876543"]),
    ("track2", ";5105105105105100=28121015432112345678?", ";510510******5100=<redacted>?", ["28121015432112345678"]),
    ("track2-pan-misread", ";6212345678901234567=2812101?", ";621234*********4567=<redacted>?", ["2812101"]),
    ("track2-bare", "t2=4242424242424242=2812101777777 code=2824", "t2=424242******4242=<redacted> code=2824",
     ["2812101777777"]),
    ("track1-lowercase", "%b4000056655665556^PRIVACY/TESTER^2812101987654321000000?", "%b400005******5556^<redacted>?",
     ["PRIVACY/TESTER", "2812101987654321"]),
    ("track2-emv-hex", "57:4761739001010119D28122011143804400000F", "57:476173******0119=<redacted>",
     ["28122011143804400000"]),
    ("track2-emv-tag-57-glued", "57134111111111111111D28121010000000000F", "5713411111******1111=<redacted>",
     ["4111111111111111", "28121010000000000"]),
    ("track2-emv-tag-9f6b-glued", "9F6B134761739001010119D28122011143804400000F rc=05",
     "9F6B134761********0119=<redacted> rc=05", ["4761739001010119", "28122011143804400000"]),
    ("emv-tlv-dump", "5F2A020978 5A0847617390010101195F3401 57134761739001010119D2812201114380440F 9F2701",
     "5F2A020978 5A08476173******01195F3401 5713476173******0119=<redacted> 9F2701",
     ["4761739001010119", "281220111438044"]),
    ("emv-tag-5a-glued", "5A084111111111111111", "5A08411111******1111", ["4111111111111111"]),
    ("emv-tlv-dump-glued", "9F27018057134761739001010119D2812201114380440F5A0842639826402692995F2403281231",
     "9F2701805713476173******0119=<redacted>A08426398******92995F2403281231", ["4761739001010119", "4263982640269299"]),
    ("emv-tag-5a-padded", "5A074222222222222F5F24", "5A07422222***2222F5F24", ["4222222222222"]),
]


@pytest.mark.parametrize("line, masked, gone", [t[1:] for t in TRACKS], ids=[t[0] for t in TRACKS])
def test_track_data_keeps_only_the_masked_card_number(line, masked, gone):
    out = mask_text(line)
    assert out == masked
    assert not any(g in out for g in gone)
    assert has_card_data(line) and not has_card_data(out)


SECRETS = [
    ("cvv", "auth cvv=7351 ok", "auth cvv=<redacted> ok"),
    ("cvc2-colon", "CVC2: 9314", "CVC2: <redacted>"),
    ("cvv-json", '{"cvv": "8823", "amount": 1250}', '{"cvv": "<redacted>", "amount": 1250}'),
    ("cvv-spaced", "CVV 456 entered", "CVV <redacted> entered"),
    ("security-code", "security_code=123", "security_code=<redacted>"),
    ("pin-block", "pinblock=8A3F1C2D4E5B6A79 rc=55", "pinblock=<redacted> rc=55"),
    ("pin-block-named", "pin_block: 0412AC89FFFFFFFF", "pin_block: <redacted>"),
    ("pin-block-spaced", "pin_block 1234ABCD5678EF00 rc=55", "pin_block <redacted> rc=55"),
    ("pin-block-words", "PIN block 0412ac89ffffffff sent", "PIN block <redacted> sent"),
    ("iso-field-52-spaced", "field 52 F1E2D3C4B5A69788 DE39=55", "field 52 <redacted> DE39=55"),
    ("iso-field-52", "DE52=F1E2D3C4B5A69788 DE39=55", "DE52=<redacted> DE39=55"),
    ("authorization-bearer", "Authorization: Bearer tok_5f1d2c3b4a59687766554433", "Authorization: Bearer <redacted>"),
    ("authorization-basic", "authorization='Basic cG9zOnBsYW50ZWQ='", "authorization='Basic <redacted>'"),
    ("bearer-alone", "sent bearer eyJhbGciOiJIUzI1NiJ9.e30.sig to the host", "sent bearer <redacted> to the host"),
    ("password-field", "login password=Hunter2-Planted user=ops", "login password=<redacted> user=ops"),
    ("token-suffix", "push_token: abc123def456", "push_token: <redacted>"),
    ("token-base64-padded", "token: dG9rZW4tdmFsdWU= sent", "token: <redacted> sent"),
    ("password-then-a-field", "password=Hunter2-Planted code=2824", "password=<redacted> code=2824"),
    ("api-key-header", "X-Api-Key=k-998877665544", "X-Api-Key=<redacted>"),
    ("url-password", "connecting to https://ops:Pw-4u9!xZq@pay.example/api", "connecting to https://<redacted>@pay.example/api"),
    ("database-url", "postgresql://posdiag:s3cret@db.internal/posdiag", "postgresql://<redacted>@db.internal/posdiag"),
    ("health-path-query", "/health?apikey=AK-77f3e1c9d2b4&lane=7", "/health?apikey=<redacted>&lane=<redacted>"),
    ("request-line-query", "GET /auth?session=SESS-9f8e7d6c HTTP/1.1", "GET /auth?session=<redacted> HTTP/1.1"),
    ("url-query-and-fragment", "https://h.example/cb?code=x1y2z3#access_token=abc",
     "https://h.example/cb?code=<redacted>#<redacted>"),
    ("bare-query-value", "/hook?0a1b2c3d4e5f", "/hook?<redacted>"),
    ("query-in-a-sentence", "primary /health?apikey=AK-1&lane=7: HTTP 404 (see /x?k=v).",
     "primary /health?apikey=<redacted>&lane=<redacted>: HTTP 404 (see /x?k=<redacted>)."),
]


@pytest.mark.parametrize("line, masked", [s[1:] for s in SECRETS], ids=[s[0] for s in SECRETS])
def test_card_codes_pin_blocks_and_secrets_are_replaced(line, masked):
    assert mask_text(line) == masked


def test_a_remembered_secret_is_masked_wherever_it_shows_up():
    secret = "tok_remembered_4c0ffee5deadbeef"
    assert secret in mask_text(f"the sender said {secret}")
    redact.remember(secret)
    assert mask_text(f"the sender said {secret}!") == f"the sender said {REDACTED}!"


def test_a_secret_too_short_is_not_remembered_to_mask_innocent_words():
    redact.remember("ok")
    assert mask_text("status ok") == "status ok"


@pytest.mark.parametrize(("secret", "remembered"), [("k3y-5", False), ("k3y-56", True)])
def test_a_secret_is_remembered_from_six_characters_on(secret, remembered):
    redact.remember(secret)
    assert (mask_text(f"sent {secret} to the host") == f"sent {REDACTED} to the host") is remembered


def test_a_remembered_secret_holding_another_is_masked_whole():
    """The shorter secret inside the longer must not be replaced first, leaving the rest of the longer one."""
    redact.remember("tok-4c0ffee5")
    redact.remember("tok-4c0ffee5-deadbeef")
    assert mask_text("sent tok-4c0ffee5-deadbeef and tok-4c0ffee5") == f"sent {REDACTED} and {REDACTED}"


@pytest.mark.parametrize("month", [f"{m:02d}" for m in range(1, 13)])
def test_emv_track_2_glued_to_its_tag_is_masked_whatever_month_it_expires(month):
    assert mask_text(f"57134111111111111111D28{month}1010000000000F") == "5713411111******1111=<redacted>"


def stamp_passing_luhn(fmt_len: int) -> str:
    """A YYYYMMDDhhmmss[fff] time stamp that happens to pass the Luhn check (one in ten does)."""
    for second in range(60):
        stamp = f"202611301015{second:02d}" + "123"[: fmt_len - 14]
        if luhn(stamp):
            return stamp
    raise AssertionError("no such second")


def epoch_passing_luhn(digits: int) -> str:
    start = 1764410102123456789 // 10 ** (19 - digits)
    return next(str(n) for n in range(start, start + 20) if luhn(str(n)))


KEPT = [
    ("iso-time", "2026-11-30 10:15:02.123456 code=2824"),
    ("iso-time-t", "2026-11-30T10:15:02.123+08:00"),
    ("compact-time", stamp_passing_luhn(14)),
    ("compact-time-ms", stamp_passing_luhn(17)),
    ("epoch-ms", epoch_passing_luhn(13)),
    ("epoch-us", epoch_passing_luhn(16)),
    ("epoch-ns", epoch_passing_luhn(19)),
    ("report-id", "report 12345678-1234-4123-8123-123456789012 stored"),
    ("byte-counts", "free 52613349376 of 256060514304 bytes, 1073741824 in /var"),
    ("addresses", "10.0.0.1:443 via fe80::1ff:fe23:4567:890a and 2001:db8::1"),
    ("serial-failing-luhn", "reader serial 4111111111111112 answered"),
    ("padded-counter", "stan=0000004111111111 rrn=123456789012"),
    ("phone", "+86 138 0013 8000"),
    ("iso-fields", "DE39=05 DE11=000123 F4=000000001250"),
    ("words", "PIN entry failed twice; ping 10.0.0.1; shipping; spinning; the token file is missing"),
    ("prose", "a bearer token is a password: run 'chmod 600'; this is a terminal's token: terminals cannot sign in"),
    ("json-literals", '{"token": null, "secret": false, "pin": true}'),
    ("own-paths", "server.token_file: /etc/posdiag/token is readable by group or others (mode 0644)"),
    ("path-then-colon", "server.token_file: /etc/posdiag/token: permission denied; token file: /run/token: mode 0600"),
    ("path-ending-in-a-name", "token file: /tmp/bundle-test/no-token: not there; /srv/app_password: missing"),
    ("dns-port", "127.0.0.1#5353"),
    ("name-without-a-value-then-a-field", "online PIN: code=2824 rc=55"),
    ("token-without-a-value", "token: code=2824 rc=91"),
    ("password-without-a-value", "password: rc=05 code=2824"),
    ("pin-with-nothing-after-the-sign", "PIN= code=2824"),
    ("address-lists", "10.0.0.1 192.168.100.200 192.168.100.201 10.100.200.123 via 172.16.254.101/24"),
    ("dates-with-slashes-and-dots", "30/11/2026 10:15:02, 2026/11/30 23:59:59.123456, 30.11.2026 10:15"),
    ("versions", "posdiag 1.2.3 on kernel 6.1.0-18-amd64, build 20261130.101502, firmware 4.11.1111.1"),
    ("uuids", "12345678-1234-4123-8123-123456789012 40286193-2315-4471-8123-111111111111"),
    ("hex-ids", "report 3f2a9c1d40286193231544718123411f, id 57134111111111111111E0"),
    ("sha256-fingerprints", "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855, "
                            "SHA256:47:DE:Q3:44:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11"),
    ("macs", "00:1A:2B:3C:4D:5E 00-1a-2b-3c-4d-5e 001A.2B3C.4D5E"),
    ("hex-with-d-and-no-card", "blob 98765432109876543210D28121010 5A0812345678901234"),
    # groups joined only in a card's layout: one kind of separator all along, 3 to 6 digits (8 between spaces)
    ("mixed-separators", "call 138-0013 8000-1233"),  # the digits pass Luhn
    ("seven-digit-groups-dashed", "ref 5023417-3008156"),  # the digits pass Luhn
    ("nine-digit-groups-spaced", "ids 402861932 315447128"),  # the digits pass Luhn
    ("hex-track-with-no-month", "id 57134111111111111111D28131010000000000F"),  # EMV track 2 needs a real month
    ("twelve-digits-after-tag-5a", f"5A07{with_check_digit('41111111111')} rc=05"),  # passes Luhn, too short for a PAN
]


@pytest.mark.parametrize("text", [k[1] for k in KEPT], ids=[k[0] for k in KEPT])
def test_what_a_diagnosis_needs_is_not_mistaken_for_a_secret(text):
    assert mask_text(text) == text


def test_time_stamps_and_padded_numbers_are_not_card_numbers_even_when_they_pass_luhn():
    for digits in (stamp_passing_luhn(14), epoch_passing_luhn(13), "0" + with_check_digit("00000411111111")):
        assert luhn(digits) and not is_card_number(digits)


@pytest.mark.parametrize(("length", "card"), [(12, False), (13, True), (19, True), (20, False)])
def test_a_card_number_has_13_to_19_digits(length, card):
    """A PAN is 13 to 19 digits: a number one digit shorter or longer is something else, Luhn or not."""
    digits = with_check_digit("4" + "1" * (length - 2))
    assert luhn(digits) and is_card_number(digits) is card
    line = f"ref {digits} rc=05"
    assert (mask_text(line) != line) is card


def test_posdiag_never_masks_its_own_words():
    """Every English message and its Chinese translation come out of the mask as they went in."""
    import catalogues

    changed = []
    for message in catalogues.read(REPO / "core" / "locale" / "zh_CN" / "LC_MESSAGES" / "posdiag.po"):
        for text in (message.id, message.string):
            for one in (text if isinstance(text, tuple) else (text,)):
                if one and mask_text(one) != one:
                    changed.append(one)
    assert changed == []


@pytest.mark.parametrize("text", [p[1] for p in PANS] + [t[1] for t in TRACKS] + [s[1] for s in SECRETS])
def test_masking_twice_changes_nothing_more(text):
    once = mask_text(text)
    assert mask_text(once) == once


def test_a_structure_is_masked_value_by_value_and_stays_the_same_json():
    """A number that is a card number (a POS's JSON: ``{"pan": 4111111111111111}``) becomes its masked
    string; every other number stays a number."""
    millis = epoch_passing_luhn(13)
    report = {"probes": [{"findings": [{"message": "pan=4111111111111111", "data": {"pan": 4111111111111111,
                                                                                   "4111111111111111": True}}]}],
              "ok": None, "ratio": 0.5, "tuple": ("cvv=123",), "bytes": 52613349376, "at_ms": int(millis),
              "flag": True, "negative": -4111111111111111}
    masked = mask_data(report)
    assert masked == {"probes": [{"findings": [{"message": "pan=411111******1111",
                                                "data": {"pan": "411111******1111", "411111******1111": True}}]}],
                      "ok": None, "ratio": 0.5, "tuple": ["cvv=<redacted>"], "bytes": 52613349376, "at_ms": int(millis),
                      "flag": True, "negative": "-411111******1111"}
    assert json.loads(json.dumps(masked)) == masked


def test_a_configuration_keeps_its_shape_and_loses_its_secrets():
    raw = {"server": {"url": "https://ops:pw@collector.example/api", "token_file": "/etc/posdiag/token"},
           "payment_hosts": [{"host": "pay.example", "health_path": "/health?apikey=AK-1", "port": 443}],
           "vault": {"api_key": "k-123", "password": ""}}
    assert mask_config(raw) == {
        "server": {"url": "https://<redacted>@collector.example/api", "token_file": "/etc/posdiag/token"},
        "payment_hosts": [{"host": "pay.example", "health_path": "/health?apikey=<redacted>", "port": 443}],
        "vault": {"api_key": REDACTED, "password": ""}}


def test_a_configuration_s_secrets_are_remembered_for_wherever_they_show_up_bare():
    redact.remember_config({"server": {"url": "https://posdiag:Bare-Pass-771@collector.example/api"},
                            "payment_hosts": [{"health_path": "/health?apikey=Bare-Key-772&region=europe"}],
                            "vault": {"password": "Bare-Word-773"}})
    assert mask_text("failed with Bare-Pass-771, Bare-Key-772 and Bare-Word-773") == \
        f"failed with {REDACTED}, {REDACTED} and {REDACTED}"
    assert mask_text("posdiag in europe") == "posdiag in europe"  # a user name, an ordinary query value
    assert mask_text("https://posdiag:Bare-Pass-771@collector.example/api") == "https://<redacted>@collector.example/api"


def test_a_remembered_secret_in_a_query_leaves_the_values_after_it_masked_too():
    """Every command remembers the configuration's secret query values when it loads it: the health path
    it then quotes still has every other value replaced, not only the remembered one."""
    redact.remember_config({"payment_hosts": [{"health_path": "/health?apikey=AK-77f3e1c9d2b4&lane=7"}]})
    assert mask_text("primary /health?apikey=AK-77f3e1c9d2b4&lane=7: HTTP 404") == \
        "primary /health?apikey=<redacted>&lane=<redacted>: HTTP 404"


@pytest.mark.parametrize("length", [14, 15, 17, 18])
def test_a_number_starting_with_1_is_a_card_number_at_a_length_no_unix_time_has(length):
    """Unix times in ms, µs and ns have 13, 16 and 19 digits and start with 1: only those lengths are
    spared; a 1 in front of a card number of another length does not save it."""
    digits = with_check_digit("1" + "7" * (length - 2))
    assert luhn(digits) and is_card_number(digits)
    assert mask_text(f"ref {digits} rc=05") != f"ref {digits} rc=05"
