"""A hostile printer web server for the adversarial suite (aiohttp on loopback).

It logs every byte that reaches it (request line, headers, body, WebSocket
frames) so a test can prove a refused payload never arrived, and it serves
what a malicious device would: files disguised as images, fonts and SVG,
polyglots, encoded files inside pages, JSON and WebSocket frames, and pages
whose scripts try to save files (blob links, fetch + save, service workers).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import quopri
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

from lab.ews.assets import logo_png
from lab.sites import serve
from printgate.lifecycle import Service

SECRET = random.Random(21).randbytes(6 * 1024)  # the "file" every hostile case carries (random, reproducible)
MARK = b"PRINTGATE-SECRET-"  # first bytes of the secret document inside the archives


def secret_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("customer/addressbook.csv", MARK + b"name,email\nAlice,alice@example.com\n")
        zf.writestr("customer/blob.bin", SECRET)
    return buf.getvalue()


def sfnt() -> bytes:
    """A real TrueType font (fontTools' FontBuilder: two square glyphs, the tables a text font has,
    nothing appended): the proxy parses a font before it serves one (issue 21 round 4, F4)."""
    builder = FontBuilder(1000, isTTF=True)
    names = [".notdef", "A"]
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({0x41: "A"})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((600, 700))
        pen.lineTo((600, 0))
        pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (700, 100) for name in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Dev", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def png_with_chunk(kind: bytes, payload: bytes) -> bytes:
    png = logo_png()
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]


def b64(n: int = len(SECRET)) -> str:
    data = (SECRET * (n // len(SECRET) + 1))[:n]
    return base64.b64encode(data).decode()


WORDS = ("apple", "river", "stone", "cloud", "green", "music", "table", "house", "paper", "light", "water",
         "north", "smile", "dream", "plant", "glass")


def groups(text: str, size: int, sep: str) -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


def word_code(data: bytes) -> str:
    """Each byte as two words from a 16-word list (19 KB of "apple river ..." for 6 KB)."""
    return " ".join(WORDS[c >> 4] + " " + WORDS[c & 15] for c in data)


_B85 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
OTHER_B64 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                            b"!#$%()*,-.:;<>?@[]^_{|}~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn")


def z85(data: bytes) -> bytes:
    """ZeroMQ's Z85 (the base85 of RFC 1924 with another alphabet; Python has no encoder)."""
    return base64.b85encode(data).translate(bytes.maketrans(_B85, _Z85))


def html_text(raw: bytes) -> bytes:
    return raw.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


def pieces_joined(encoded: bytes, template: str, size: int = 3000) -> bytes:
    """``encoded`` cut into ``size``-character pieces, each put into ``template`` (markup between)."""
    return "".join(template.format(encoded[i : i + size].decode()) for i in range(0, len(encoded), size)).encode()


def html_pieces(encoded: bytes, template: str, size: int = 3000) -> bytes:
    return b"<html><body><script>var a=[];</script>" + pieces_joined(encoded, template, size) + b"</body></html>"


def _html(body: str, head: str = "") -> web.Response:
    return web.Response(text=f"<!doctype html><html><head><meta charset=utf-8><title>Hostile</title>{head}</head>"
                             f"<body>{body}</body></html>", content_type="text/html")


# --- pages whose scripts try to save a file in the technician's browser ------------------
BLOB_DOWNLOAD_PAGE = """<p id=state>start</p><script>
const bytes = new Uint8Array(4096); for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
const a = document.createElement('a');
a.href = URL.createObjectURL(new Blob([bytes], {type: 'application/octet-stream'}));
a.download = 'customer-backup.bin'; a.id = 'save'; a.textContent = 'save';
document.body.appendChild(a);
document.getElementById('state').textContent = 'ready';
</script>"""

FETCH_SAVE_PAGE = """<p id=state>start</p><script>
fetch('/fetch/data').then(r => r.arrayBuffer()).then(buf => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([buf], {type: 'text/plain'}));
  a.download = 'status.txt'; a.id = 'save'; a.textContent = 'save';
  document.body.appendChild(a);
  document.getElementById('state').textContent = 'ready';
}).catch(e => { document.getElementById('state').textContent = 'failed ' + e; });
</script>"""

DATA_URL_DOWNLOAD_PAGE = """<a id=save download="settings.txt"
href="data:text/plain;base64,c2VjcmV0IHNldHRpbmdzCg==">save</a><p id=state>ready</p>"""

SAME_ORIGIN_DOWNLOAD_PAGE = """<a id=save download="status.txt" href="/fetch/data">save</a><p id=state>ready</p>"""

SERVICE_WORKER_PAGE = """<p id=state>start</p><script>
navigator.serviceWorker.register('/sw.js', {scope: '/'})
  .then(() => { document.getElementById('state').textContent = 'registered'; })
  .catch(e => { document.getElementById('state').textContent = 'refused: ' + e.name; });
</script>"""

FONT_PAGE = """<link rel=stylesheet href=/device.css><p id=state style="font-family:dev">ready</p>"""

SW_SCRIPT = "self.addEventListener('fetch', e => e.respondWith(new Response('hijacked')));"


@dataclass
class Reached:
    """One thing that reached the device: a request (line, headers, body) or a WebSocket frame."""

    what: str
    raw: bytes


@dataclass
class HostileState:
    log: list[Reached] = field(default_factory=list)

    def saw(self, fragment: bytes, since: int = 0) -> bool:
        return any(fragment in r.raw for r in self.log[since:])


STATE: web.AppKey[HostileState] = web.AppKey("hostile_state", HostileState)


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    body = await request.read()
    head = f"{request.method} {request.raw_path}\n".encode() + b"".join(
        k.encode() + b": " + v.encode("utf-8", "surrogateescape") + b"\n" for k, v in request.headers.items()
    )
    request.app[STATE].log.append(Reached("request", head + b"\n" + body))
    return await handler(request)


async def home(request: web.Request) -> web.Response:
    return _html("<h1 id=title>Hostile home</h1><p>Status: ready</p>")


async def sink(request: web.Request) -> web.Response:
    return web.Response(text="accepted", content_type="text/plain")


DEVICE_TOKEN = base64.urlsafe_b64encode(SECRET[:600]).decode().rstrip("=")  # a JWT-sized session cookie


async def set_cookie(request: web.Request) -> web.Response:
    resp = web.Response(text="signed in", content_type="text/plain")
    resp.set_cookie("ews_token", DEVICE_TOKEN, path="/", httponly=True)
    return resp


async def fetch_data(request: web.Request) -> web.Response:
    return web.Response(text="toner 80%, drum 60%", content_type="text/plain")


def _binary(ctype: str) -> web.Response:
    return web.Response(body=secret_zip(), content_type=ctype)


SVG_SCRIPT = b"<svg xmlns='http://www.w3.org/2000/svg'><script>fetch('/x')</script><rect width='1' height='1'/></svg>"
SVG_FOREIGN = (b"<svg xmlns='http://www.w3.org/2000/svg'><foreignObject width='10' height='10'>"
               b"<div xmlns='http://www.w3.org/1999/xhtml'>x</div></foreignObject></svg>")
SVG_HANDLER = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><rect width='1' height='1'/></svg>"
SVG_PLAIN = b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'><rect width='4' height='4' fill='#1d3557'/></svg>"


def svg_with_zip() -> bytes:
    data = base64.b64encode(secret_zip())
    return (b"<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink'>"
            b"<image xlink:href='data:application/zip;base64," + data + b"'/></svg>")


# what each /dl/<name> serves: (body, content type)
DOWNLOADS: dict[str, tuple[bytes, str]] = {
    "svg-binary": (SECRET, "image/svg+xml"),
    "svg-script": (SVG_SCRIPT, "image/svg+xml"),
    "svg-foreign": (SVG_FOREIGN, "image/svg+xml"),
    "svg-handler": (SVG_HANDLER, "image/svg+xml"),
    "svg-zip-data": (svg_with_zip(), "image/svg+xml"),
    "svg-plain": (SVG_PLAIN, "image/svg+xml"),
    "eot-png": (logo_png(), "application/vnd.ms-fontobject"),
    "eot-random": (SECRET, "application/vnd.ms-fontobject"),
    "woff2-binary": (b"wOF2" + SECRET, "font/woff2"),
    "ttf-binary": (b"\x00\x01\x00\x00" + SECRET, "font/ttf"),
    "fonts/unreferenced.ttf": (sfnt(), "font/ttf"),
    "fonts/device.ttf": (sfnt(), "font/ttf"),
    "fonts/polyglot.ttf": (sfnt() + secret_zip(), "font/ttf"),
    "png-zip": (logo_png() + secret_zip(), "image/png"),
    "png-zip-chunk": (png_with_chunk(b"ziPp", secret_zip()), "image/png"),
    "png-text-zip": (png_with_chunk(b"tEXt", b"comment\x00" + secret_zip()), "image/png"),
    "gif-zip": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + secret_zip(), "image/gif"),
    "jpeg-zip": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9" + secret_zip(), "image/jpeg"),
    "bmp-zip": (b"BM" + struct.pack("<I", 58) + bytes(52) + secret_zip(), "image/bmp"),
    "html-b64-60k": (f"<html><body><p>ok</p><script>var blob='{b64(45 * 1024)}';</script></body></html>".encode(), "text/html"),
    "js-b64-2m": (f"var payload = \"{b64(1536 * 1024)}\";".encode(), "application/javascript"),
    "html-data-zip": (f"<html><body><a href='data:application/zip;base64,{base64.b64encode(secret_zip()).decode()}'>x</a></body></html>".encode(), "text/html"),
    "json-wrapped": (json.dumps({"firmware": base64.encodebytes(SECRET).decode()}).encode(), "application/json"),
    "json-array": (json.dumps({"parts": [b64()[i:i + 76] for i in range(0, len(b64()), 76)]}).encode(), "application/json"),
    "html-hex": (f"<html><body><script>var h='{SECRET.hex()}';</script></body></html>".encode(), "text/html"),
    "js-escaped-hex": (("var s=\"" + "".join(f"\\x{c:02x}" for c in SECRET) + "\";").encode(), "application/javascript"),
    "html-qp": (b"<html><body><pre>" + quopri.encodestring(SECRET) + b"</pre></body></html>", "text/html"),
    "text-uu": (b"begin 644 backup.bin\n" + b"".join(binascii.b2a_uu(SECRET[i:i + 45]) for i in range(0, 4500, 45)) + b"`\nend\n", "text/plain"),
    "js-byte-array": (("var b=[" + ",".join(str(c) for c in SECRET) + "];").encode(), "application/javascript"),
    "css-b64-font-zip": (f"@font-face{{font-family:x;src:url(data:font/woff2;base64,{base64.b64encode(secret_zip()).decode()})}}".encode(), "text/css"),
    "text-ps-newline": (b"\n%!PS-Adobe-3.0\n/Helvetica findfont 12 scalefont setfont\nshowpage\n", "text/plain"),
    "html-zip-appended": (b"<html><body><p>ok</p></body></html>" + secret_zip(), "text/html"),
    "xml-wrapped-b64": (f"<?xml version='1.0'?><backup><data>{base64.encodebytes(SECRET).decode()}</data></backup>".encode(),
                        "application/xml"),
    "text-pem": (b"\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n", "text/plain"),
    # broken up by separators, or low-entropy encodings (issue 21 follow-up)
    "html-b64-groups-of-8": (f"<html><body><p>{groups(b64(), 8, ' ')}</p></body></html>".encode(), "text/html"),
    "html-b64-40-joined-by-x": (f"<html><body>{groups(b64(), 40, ' x ')}</body></html>".encode(), "text/html"),
    "html-word-code": (f"<html><body><p>{word_code(SECRET)}</p></body></html>".encode(), "text/html"),
    "js-word-code": (f"var t='{word_code(SECRET)}';".encode(), "application/javascript"),
    "html-decimal-bytes": (f"<html><body>{' '.join(str(c) for c in SECRET)}</body></html>".encode(), "text/html"),
    "js-ascii85-bare": (f"var a={json.dumps(base64.a85encode(SECRET).decode())};".encode(), "application/javascript"),
    "html-ascii85-bare": (b"<html><body><pre>" + base64.a85encode(SECRET).replace(b"&", b"&amp;").replace(b"<", b"&lt;")
                          + b"</pre></body></html>", "text/html"),
    "css-hex-groups": (f"/*{groups(SECRET.hex(), 32, ' ')}*/".encode(), "text/css"),
    "text-b64-groups-of-8": (groups(b64(), 8, " ").encode(), "text/plain"),
    # a file in pieces each under the per-run threshold, separated by markup (issue 21 F1)
    "html-b64-pieces-in-divs": (html_pieces(base64.b64encode(secret_zip()), "<div class=x>{}</div>\n<p>status</p>\n"),
                                "text/html"),
    "html-b64-pieces-in-attrs": (html_pieces(base64.b64encode(secret_zip()), '<i data-v="{}"></i><b>ok</b>\n'), "text/html"),
    "html-b64-pieces-in-js-push": (html_pieces(base64.b64encode(secret_zip()), "a.push(/*x*/'{}');\nvar z=1;\n"),
                                   "text/html"),
    "css-b64-pieces-in-vars": (pieces_joined(base64.b64encode(secret_zip()), ".c{{--v:'{}';}}\n.d{{color:red}}\n"), "text/css"),
    "html-hex-pieces-in-divs": (html_pieces(secret_zip().hex().encode(), "<div>{}</div>\n<p>status</p>\n"), "text/html"),
    "html-b32-pieces-in-divs": (html_pieces(base64.b32encode(secret_zip()), "<div>{}</div>\n<p>status</p>\n"), "text/html"),
    # encodings over other alphabets, or too plain for an entropy check (issue 21 F2)
    "html-base85-rfc1924": (f"<html><body><script>var d=`{base64.b85encode(SECRET).decode()}`;</script></body></html>".encode(),
                            "text/html"),
    "html-z85-text": (b"<html><body><pre>" + html_text(z85(SECRET)) + b"</pre></body></html>", "text/html"),
    "html-binary-digits": (f"<html><body><p>{''.join(f'{c:08b}' for c in SECRET[:2048])}</p></body></html>".encode(), "text/html"),
    "html-0x-list": (f"<html><body><p>{','.join(f'0x{c:02x}' for c in SECRET[:2048])}</p></body></html>".encode(), "text/html"),
    "css-0x-list": (f"/* {','.join(f'0x{c:02x}' for c in SECRET[:2048])} */".encode(), "text/css"),
    "html-uuencode-text": (b"<html><body><pre>" + html_text(b"".join(binascii.b2a_uu(SECRET[i:i + 45]) for i in range(0, 4500, 45)))
                           + b"</pre></body></html>", "text/html"),
    "html-b64-other-alphabet": (b"<html><body><script>var d='" + base64.b64encode(SECRET).translate(OTHER_B64) + b"';</script></body></html>",
                                "text/html"),
    "html-cjk-per-byte": (("<html><body><p>" + "".join(chr(0x4E00 + c) for c in SECRET) + "</p></body></html>").encode(),
                          "text/html"),
    "svg-b64-groups-in-desc": (f"<svg xmlns='http://www.w3.org/2000/svg'><desc>{groups(b64(), 8, ' ')}</desc></svg>".encode(),
                               "image/svg+xml"),
    # issue 21, third round (outside tester a21): short groups, odd separators, escapes
    "html-b64-groups-of-4": (f"<html><body><p>{groups(b64(), 4, ' ')}</p></body></html>".encode(), "text/html"),
    "js-b64-bang-every-3": (("var d='" + "".join(b64()[i : i + 3] + "!" for i in range(0, len(b64()), 3)) + "';").encode(),
                            "application/javascript"),
    "html-hex-g-every-30": (f"<html><body><p>{groups(SECRET.hex(), 30, 'g')}</p></body></html>".encode(), "text/html"),
    "json-hex-z-prefix": (json.dumps({"fw": "z" + SECRET[:3000].hex()}).encode(), "application/json"),
    "css-vars-spaced": ((":root{" + "; ".join(f"--a{i}: {c}" for i, c in enumerate(SECRET)) + "}").encode(), "text/css"),
    "json-cjk-escaped": (json.dumps({"fw": "".join(chr(0x4E00 + c) for c in SECRET)}).encode(), "application/json"),
}


def _crafted_css() -> bytes:
    data = random.Random(2104).randbytes(220_000)
    return (":root{" + "; ".join(f"--a{i}: {c}" for i, c in enumerate(data)) + "}").encode()


def _crafted_escaped() -> bytes:
    data = random.Random(2105).randbytes(400_000)
    return ("var t='" + "".join(f"\\u{0x4E00 + c:04x}" for c in data) + "';").encode()


def _crafted_groups() -> bytes:
    text = base64.b64encode(random.Random(2106).randbytes(1_700_000)).decode()
    return f"<html><body><p>{groups(text, 4, ' ')}</p></body></html>".encode()


# 2-3 MB pages crafted to cost the checks CPU (issue 21 F3), built on first request
CRAFTED: dict[str, tuple[Callable[[], bytes], str]] = {
    "css-vars": (_crafted_css, "text/css"),
    "escaped-cjk": (_crafted_escaped, "application/javascript"),
    "groups-of-4": (_crafted_groups, "text/html"),
}


@functools.cache
def crafted(name: str) -> bytes:
    return CRAFTED[name][0]()


async def crafted_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in CRAFTED:
        raise web.HTTPNotFound()
    return web.Response(body=crafted(name), headers={"content-type": CRAFTED[name][1]})


async def download(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in DOWNLOADS:
        raise web.HTTPNotFound()
    body, ctype = DOWNLOADS[name]
    return web.Response(body=body, headers={"content-type": ctype})


async def device_css(request: web.Request) -> web.Response:
    return web.Response(text="@font-face{font-family:dev;src:url('/dl/fonts/device.ttf')}"
                             "@font-face{font-family:poly;src:url(/dl/fonts/polyglot.ttf)}body{font-family:dev}",
                        content_type="text/css")


async def sw_script(request: web.Request) -> web.Response:
    return web.Response(text=SW_SCRIPT, content_type="application/javascript",
                        headers={"Service-Worker-Allowed": "/"})


def _page(body: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _html(body)
    return handler


async def ws(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.send_str(json.dumps({"status": "ready", "seq": 1}))
    await sock.send_str(json.dumps({"firmware": b64(44 * 1024)}))  # 58 KB of base64
    await sock.send_bytes(secret_zip())
    await sock.send_str("\n%!PS-Adobe-3.0\nshowpage\n")
    await sock.send_str(json.dumps({"status": "ready", "seq": 2}))
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            state.log.append(Reached("ws-text", msg.data.encode()))
            await sock.send_str(json.dumps({"echo": len(msg.data)}))
        elif msg.type == WSMsgType.BINARY:
            state.log.append(Reached("ws-binary", msg.data))
    return sock


BOMB_DECODED = 200 * 1024 * 1024  # what each compression bomb decodes to (text/html)
_bombs: dict[str, bytes] = {}


def bomb(encoding: str) -> bytes:
    """A small body that decodes to ``BOMB_DECODED`` bytes of HTML (built once, streamed)."""
    if encoding not in _bombs:
        chunk = b"<p>" + b"A" * (1024 * 1024 - 3)
        if encoding == "br":
            import brotli
            c = brotli.Compressor(quality=1)
            _bombs[encoding] = b"".join(c.process(chunk) for _ in range(BOMB_DECODED // len(chunk))) + c.finish()
        else:
            z = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            _bombs[encoding] = b"".join(z.compress(chunk) for _ in range(BOMB_DECODED // len(chunk))) + z.flush()
    return _bombs[encoding]


async def compression_bomb(request: web.Request) -> web.Response:
    encoding = request.match_info["encoding"]
    return web.Response(body=bomb(encoding), content_type="text/html",
                        headers={"Content-Encoding": encoding})


def make_app(state: HostileState) -> web.Application:
    app = web.Application(middlewares=[record], client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    r = app.router
    r.add_get("/", home)
    r.add_route("*", "/sink", sink)
    r.add_route("*", "/sink/{tail:.*}", sink)
    r.add_get("/fetch/data", fetch_data)
    r.add_get("/signin", set_cookie)
    r.add_get("/dl/{name:.+}", download)
    r.add_get("/crafted/{name}", crafted_page)
    r.add_get("/device.css", device_css)
    r.add_get("/sw.js", sw_script)
    r.add_get("/page/blob", _page(BLOB_DOWNLOAD_PAGE))
    r.add_get("/page/fetch-save", _page(FETCH_SAVE_PAGE))
    r.add_get("/page/data-url", _page(DATA_URL_DOWNLOAD_PAGE))
    r.add_get("/page/same-origin-download", _page(SAME_ORIGIN_DOWNLOAD_PAGE))
    r.add_get("/page/service-worker", _page(SERVICE_WORKER_PAGE))
    r.add_get("/page/fonts", _page(FONT_PAGE))
    r.add_get("/ws", ws)
    r.add_get("/bomb/{encoding}", compression_bomb)
    return app


class HostileDevice(Service):
    """The hostile EWS on a free loopback port; ``state.log`` holds what reached it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.state = HostileState()
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        """A device of a test's own adds its pages to the hostile ones here."""

    async def start(self) -> None:
        app = make_app(self.state)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = await serve(self._runner, self.host)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
