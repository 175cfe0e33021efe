"""Vendor login profiles: how the proxy signs in to a device's login form with a stored credential.

A profile names the login page's URL, the user name and password fields, the CSRF token field
(fetched from the login page, if the device uses one) and how success shows. The generic profile
reads the login page's form itself (its action, the first text field, the password field and
every hidden field, so CSRF tokens come along). Profiles are parsed once (frozen data); the
form is parsed per login with the standard library's HTML parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from gateway.errors import DeviceLoginFailed


@dataclass(frozen=True, slots=True)
class LoginProfile:
    name: str
    vendors: tuple[str, ...] = ()  # matched case-insensitively against the discovered vendor
    login_path: str = "/login"
    user_field: str = ""  # "" = the login form's first text field
    password_field: str = ""  # "" = the login form's password field
    csrf_field: str = ""  # a hidden field whose value the login page sets ("" = every hidden field)
    # success: the answer sets a cookie and is not the login form again (nor a 401/403)

    def is_login_redirect(self, location: str, device_origin: str) -> bool:
        """Does a redirect to ``location`` send the browser to this profile's login page?"""
        path = urlsplit(urljoin(device_origin + "/", location)).path
        if self.name == GENERIC.name:
            return "login" in path.lower() or "logon" in path.lower() or "signin" in path.lower()
        return path == self.login_path


GENERIC = LoginProfile("generic")
PROFILES: tuple[LoginProfile, ...] = (
    LoginProfile("ricoh", vendors=("ricoh",), login_path="/web/guest/login.cgi", user_field="userid",
                 password_field="password_work", csrf_field="wimToken"),
    LoginProfile("xerox", vendors=("xerox",), login_path="/userpost/login", user_field="webUsername",
                 password_field="webPassword", csrf_field="CSRFToken"),
)


def profile_for(name: str, vendor: str) -> LoginProfile:
    """The profile an administrator named, else the vendor's, else the generic one."""
    if name:
        for p in PROFILES:
            if p.name == name:
                return p
        return GENERIC
    v = vendor.lower()
    for p in PROFILES:
        if any(x in v for x in p.vendors):
            return p
    return GENERIC


@dataclass(slots=True)
class LoginForm:
    action: str
    user_field: str
    password_field: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden fields (CSRF tokens) as the page set them


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, list[dict[str, str]]]] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("action", ""), []))
            self._inside = True
        elif tag == "input" and self._inside and self.forms:
            self.forms[-1][1].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def read_login_form(page: str, profile: LoginProfile, page_url: str) -> LoginForm:
    """The login form of ``page`` as ``profile`` describes it; ``DeviceLoginFailed`` without one."""
    parser = _FormParser()
    parser.feed(page)
    for action, inputs in parser.forms:
        passwords = [i.get("name", "") for i in inputs if i.get("type", "").lower() == "password"]
        if not passwords:
            continue
        texts = [i.get("name", "") for i in inputs
                 if i.get("type", "text").lower() in ("text", "email", "") and i.get("name")]
        password_field = profile.password_field or passwords[0]
        user_field = profile.user_field or (texts[0] if texts else "")
        if not user_field or password_field not in passwords:
            continue
        hidden = {i["name"]: i.get("value", "") for i in inputs
                  if i.get("type", "").lower() == "hidden" and i.get("name")}
        if profile.csrf_field and profile.csrf_field not in hidden:
            raise DeviceLoginFailed(f"the device's login page has no {profile.csrf_field} token "
                                    f"(login profile {profile.name})")
        target = urljoin(page_url, action or page_url)
        return LoginForm(target, user_field, password_field, hidden)
    raise DeviceLoginFailed(f"the device's login page shows no login form (login profile {profile.name})")


def looks_like_login_form(page: str) -> bool:
    """An answer that is the login form again (a refused login)."""
    lowered = page.lower()
    return "<form" in lowered and ("type=password" in lowered or "type='password'" in lowered
                                   or 'type="password"' in lowered)
