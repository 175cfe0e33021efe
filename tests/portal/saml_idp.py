"""A real SimpleSAMLphp IdP served by ``php -S`` on a free loopback port
(TEST-RECIPES §2), configured for the portal's SAML service providers."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from lab.ports import free_tcp_port

SSP_WWW = Path("/usr/share/simplesamlphp/www")


def _cert(dir_: Path, name: str, cn: str) -> tuple[str, str]:
    key, crt = dir_ / f"{name}.pem", dir_ / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return key.read_text(), crt.read_text()


class SimpleSamlPhp:
    def __init__(self, root: Path, sps: dict[str, str]) -> None:
        """``sps``: SP entity id -> ACS URL."""
        self.root, self.sps = root, sps
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        r = self.root
        for d in ("cert", "log", "data", "tmp"):
            (r / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/simplesamlphp", r / "config", dirs_exist_ok=True)
        _cert(r / "cert", "server", "127.0.0.1")
        cfg = (r / "config" / "config.php").read_text()
        subs = {
            r"'baseurlpath'\s*=>\s*'[^']*'": f"'baseurlpath' => '{self.url}/'",
            r"'certdir'\s*=>\s*'[^']*'": f"'certdir' => '{r}/cert/'",
            r"'loggingdir'\s*=>\s*'[^']*'": f"'loggingdir' => '{r}/log/'",
            r"'datadir'\s*=>\s*'[^']*'": f"'datadir' => '{r}/data/'",
            r"'tempdir'\s*=>\s*'[^']*'": f"'tempdir' => '{r}/tmp'",
            r"'metadatadir'\s*=>\s*'[^']*'": f"'metadatadir' => '{r}/config/metadata/'",
            r"'attributenamemapdir'\s*=>\s*'[^']*'": f"'attributenamemapdir' => '{r}/config/attributemap/'",
            r"'logging.handler'\s*=>\s*'[^']*'": "'logging.handler' => 'file'",
            r"'enable.saml20-idp'\s*=>\s*(true|false)": "'enable.saml20-idp' => true",
            r"'session.cookie.secure'\s*=>\s*(true|false)": "'session.cookie.secure' => false",
        }
        for pattern, repl in subs.items():
            cfg = re.sub(pattern, repl, cfg)
        cfg = re.sub(r"'exampleauth'\s*=>\s*false", "'exampleauth' => true", cfg)
        cfg = re.sub(r"require_once\([^)]*secrets\.inc\.php'\);",
                     f"$config['secretsalt'] = '{secrets.token_hex(16)}'; "
                     f"$config['auth.adminpassword'] = '{secrets.token_hex(8)}';", cfg)
        (r / "config" / "config.php").write_text(cfg)
        (r / "config" / "authsources.php").write_text("""<?php
$config = [
  'admin' => ['core:AdminPassword'],
  'example-userpass' => ['exampleauth:UserPass',
    'student:studentpass' => ['uid' => ['student'], 'eduPersonAffiliation' => ['member', 'student'], 'mail' => ['student@example.org']],
    'employee:employeepass' => ['uid' => ['employee'], 'eduPersonAffiliation' => ['member', 'employee'], 'mail' => ['employee@example.org']],
  ],
];
""")
        md = r / "config" / "metadata"
        md.mkdir(exist_ok=True)
        (md / "saml20-idp-hosted.php").write_text("""<?php
$metadata['__DYNAMIC:1__'] = ['host' => '__DEFAULT__', 'privatekey' => 'server.pem',
  'certificate' => 'server.crt', 'auth' => 'example-userpass',
  'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient'];
""")
        entries = "".join(
            f"$metadata['{eid}'] = ['AssertionConsumerService' => '{acs}', "
            "'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient'];\n"
            for eid, acs in self.sps.items())
        (md / "saml20-sp-remote.php").write_text("<?php\n" + entries)
        env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(r / "config"), "PHP_CLI_SERVER_WORKERS": "2"}
        self.proc = subprocess.Popen(["php", "-S", f"127.0.0.1:{self.port}", "-t", str(SSP_WWW)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"{self.url}/saml2/idp/metadata.php", timeout=2)
                if "samlmetadata" in resp.headers.get("content-type", ""):
                    self.metadata = resp.text
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"SimpleSAMLphp did not start; see {r}/log")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def idp_login(idp_url: str, username: str, password: str) -> tuple[str, str]:
    """Follow the IdP redirect as a browser: log in, return (ACS URL, SAMLResponse)."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=15) as c:
        page = await c.get(idp_url)
        m = re.search(r'name="AuthState" value="([^"]+)"', page.text)
        assert m, page.text[:2000]
        import html
        resp = await c.post(str(page.url).split("?")[0],
                            data={"username": username, "password": password,
                                  "AuthState": html.unescape(m.group(1))})
        form = re.search(r'action="([^"]+)"', resp.text)
        value = re.search(r'name="SAMLResponse" value="([^"]+)"', resp.text)
        assert form and value, resp.text[:2000]
        return html.unescape(form.group(1)), html.unescape(value.group(1))


def make_keypair(dir_: Path) -> tuple[str, str]:
    return _cert(dir_, f"test-{secrets.token_hex(3)}", "test-idp")
