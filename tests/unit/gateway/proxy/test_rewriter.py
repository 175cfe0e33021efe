"""URL rewriting between a device's address and its session host (gateway/proxy/rewriter.py):
every form of the address, both directions, boundaries, bytes forms, Set-Cookie."""

from __future__ import annotations

import pytest

from gateway.proxy.rewriter import Origin, UrlRewriter
from printgate.errors import ConfigError

DEVICE = "http://192.0.2.7:8080"
SESSION = "https://s-abc.dwa.example"


@pytest.fixture
def rw() -> UrlRewriter:
    return UrlRewriter(DEVICE, SESSION)


def test_origin_parses_defaults_ports_and_lowercases() -> None:
    assert Origin.parse("HTTP://Printer.LAN") == Origin("http", "printer.lan", 80)
    assert str(Origin.parse("https://h.example:443")) == "https://h.example"
    assert str(Origin.parse("http://h.example:8080")) == "http://h.example:8080"
    assert Origin.parse("http://[2001:db8::1]:8080").netloc == "[2001:db8::1]:8080"


@pytest.mark.parametrize("bad", ["ftp://h", "h.example", "http://", "javascript:alert(1)"])
def test_origin_refuses_what_is_not_an_http_origin(bad: str) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        Origin.parse(bad)


@pytest.mark.parametrize(("device_form", "browser_form"), [
    ("http://192.0.2.7:8080/a", "https://s-abc.dwa.example/a"),
    ("https://192.0.2.7:8080/a", "https://s-abc.dwa.example/a"),
    ("ws://192.0.2.7:8080/ws", "wss://s-abc.dwa.example/ws"),
    ("wss://192.0.2.7:8080/ws", "wss://s-abc.dwa.example/ws"),
    ("//192.0.2.7:8080/x.js", "//s-abc.dwa.example/x.js"),
    ("http:\\/\\/192.0.2.7:8080\\/a", "https:\\/\\/s-abc.dwa.example\\/a"),
    ("http%3A%2F%2F192.0.2.7%3A8080%2Fa", "https%3A%2F%2Fs-abc.dwa.example%2Fa"),
    ("var h = '192.0.2.7:8080';", "var h = 's-abc.dwa.example';"),
    ("HTTP://192.0.2.7:8080/", "https://s-abc.dwa.example/"),
])
def test_every_form_of_the_device_address_is_rewritten_to_the_session(rw: UrlRewriter, device_form: str,
                                                                      browser_form: str) -> None:
    assert rw.to_browser(device_form) == browser_form
    assert rw.to_browser_bytes(device_form.encode()) == browser_form.encode()


@pytest.mark.parametrize("text", [
    "192.0.2.70", "10.192.0.2.7", "192.0.2.7.5", "1192.0.2.7", "no address here",
])
def test_other_addresses_that_contain_the_device_address_are_left_alone(rw: UrlRewriter, text: str) -> None:
    assert rw.to_browser(text) == text


def test_a_body_that_does_not_name_the_device_is_returned_as_the_same_object(rw: UrlRewriter) -> None:
    body = b"<html>" + b"x" * 1000 + b"</html>"
    assert rw.to_browser_bytes(body) is body
    assert not rw.mentions_device(body) and rw.mentions_device(b"see 192.0.2.7 now")


def test_non_ascii_bytes_survive_the_rewrite(rw: UrlRewriter) -> None:
    body = "Drucker \u00fcber http://192.0.2.7:8080/ \u2713".encode()
    assert rw.to_browser_bytes(body) == "Drucker \u00fcber https://s-abc.dwa.example/ \u2713".encode()


def test_towards_the_device_the_session_origin_is_mapped_back(rw: UrlRewriter) -> None:
    assert rw.to_device("https://s-abc.dwa.example/login?next=%2F") == "http://192.0.2.7:8080/login?next=%2F"
    assert rw.to_device_bytes(b"Referer: https://S-ABC.dwa.example/x") == b"Referer: http://192.0.2.7:8080/x"
    # a longer host that merely contains the session host is not the session
    assert rw.to_device("https://s-abc.dwa.example.evil/x") == "https://s-abc.dwa.example.evil/x"
    assert rw.to_device("https://xs-abc.dwa.example/x") == "https://xs-abc.dwa.example/x"
    data = b"nothing"
    assert rw.to_device_bytes(data) is data


def test_host_names_as_device_address_match_whole_labels_only() -> None:
    rw = UrlRewriter("http://printer.lan", "http://s-1.dwa.localhost:8443")
    assert rw.to_browser('<a href="http://Printer.LAN/x">') == '<a href="http://s-1.dwa.localhost:8443/x">'
    assert rw.to_browser("myprinter.lan printer.lan.other printer.land") == (
        "myprinter.lan printer.lan.other printer.land")


def test_set_cookie_becomes_host_only_and_reserved_names_are_dropped(rw: UrlRewriter) -> None:
    reserved = frozenset({"pg_session"})
    assert rw.set_cookie_to_browser("SID=1; Domain=192.0.2.7; Path=/; HttpOnly", reserved_names=reserved) == (
        "SID=1; Path=/; HttpOnly")
    assert rw.set_cookie_to_browser("pg_session=evil; Path=/", reserved_names=reserved) is None
    assert rw.set_cookie_to_browser("__Host-printgate-x=1", reserved_names=reserved) is None
    assert rw.set_cookie_to_browser("no-equals-sign", reserved_names=reserved) is None


def test_on_a_plain_http_session_secure_is_dropped_and_samesite_none_becomes_lax() -> None:
    rw = UrlRewriter("https://192.0.2.7", "http://s-1.dwa.localhost")
    got = rw.set_cookie_to_browser("a=b; Secure; SameSite=None; Path=/https://192.0.2.7/x",
                                   reserved_names=frozenset())
    assert got == "a=b; SameSite=Lax; Path=/http://s-1.dwa.localhost/x"
    secure = UrlRewriter("http://192.0.2.7", "https://s-1.dwa.example")
    assert secure.set_cookie_to_browser("a=b; Secure; SameSite=None", reserved_names=frozenset()) == (
        "a=b; Secure; SameSite=None")
