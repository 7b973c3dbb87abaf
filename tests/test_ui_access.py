"""Access in Chromium: a page from another loopback port uses the compatibility routes (a preflighted
fetch, a streamed generation) but not the library or backups; the log-in page with an API key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from kataribe.engine.llamacpp import EmbeddedEngine
from tests.browser import browser_tab, shot
from tests.conftest import LiveServer, own_live_server, serve

live = own_live_server("ui-access")

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {"name": "Intruder", "description": "", "personality": "", "scenario": "", "first_mes": "Hi"},
}
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Another app</title>
<script type="module" src="/probe.js"></script></head>
<body><pre id="result"></pre></body></html>
"""
# What a browser-only client (hosted KoboldAI Lite, a web UI on another dev server) does.
PROBE = """
const server = new URLSearchParams(location.search).get("server");
const card = CARD_JSON;
const out = {};
async function attempt(name, call) {
  try { out[name] = await call(); } catch (err) { out[name] = `blocked: ${err.name}`; }
}
await attempt("model", async () => {
  // a JSON content type on a GET is not CORS-safelisted: the browser sends a preflight first
  const res = await fetch(`${server}/api/v1/model`, { headers: { "Content-Type": "application/json" } });
  return (await res.json()).result;
});
await attempt("chat", async () => {
  const res = await fetch(`${server}/v1/chat/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Say hello" }], max_tokens: 8, stream: true }),
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "", chunks = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("data:") || line.includes("[DONE]")) continue;
      const delta = JSON.parse(line.slice(5)).choices[0]?.delta?.content;
      if (delta) { text += delta; chunks += 1; }
    }
  }
  return { text, chunks };
});
await attempt("characters", async () => (await fetch(`${server}/api/characters`)).status);
await attempt("backup", async () => (await fetch(`${server}/api/backup`)).status);
await attempt("import", async () => {
  // a multipart form post needs no preflight: only the server's Origin check stops it
  const form = new FormData();
  form.append("file", new Blob([JSON.stringify(card)], { type: "application/json" }), "intruder.json");
  const res = await fetch(`${server}/api/characters/import`, { method: "POST", mode: "no-cors", body: form });
  return res.type;
});
document.getElementById("result").textContent = JSON.stringify(out);
document.body.dataset.done = "true";
""".replace("CARD_JSON", json.dumps(CARD))


IMAGE_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Another app</title>
<script type="module" src="/images.js"></script></head>
<body><pre id="result"></pre><a id="open">Kataribe</a></body></html>
"""
# <img> requests carry no Origin, and SameSite=Strict does not tell ports apart: the browser sends
# the app's session cookie with them. Loaded or not tells the page whether the request was allowed.
IMAGES = """
const query = new URLSearchParams(location.search);
const server = query.get("server");
document.getElementById("open").href = `${server}/`;
const out = {};
for (const path of query.getAll("path")) {
  out[path] = await new Promise((done) => {
    const img = new Image();
    img.onload = () => done(`loaded ${img.naturalWidth}x${img.naturalHeight}`);
    img.onerror = () => done("error");
    img.src = server + path;
  });
}
document.getElementById("result").textContent = JSON.stringify(out);
document.body.dataset.done = "true";
"""


class _OtherApp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, kind = (PAGE, "text/html")
        if self.path == "/probe.js":
            body, kind = PROBE.encode(), "text/javascript"
        elif self.path == "/images.js":
            body, kind = IMAGES.encode(), "text/javascript"
        elif self.path.startswith("/images"):
            body = IMAGE_PAGE
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_app() -> Iterator[str]:
    """Another web app on another loopback port (a dev server, a browser-only client)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OtherApp)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_page_on_another_port_generates_but_cannot_touch_the_library(
    page: Page, live: LiveServer, other_app: str
) -> None:
    page.goto(f"{other_app}/?server={live.url}")
    page.locator("body[data-done=true]").wait_for(timeout=60_000)
    out = json.loads(page.locator("#result").text_content() or "{}")
    assert out["model"] == httpx.get(live.url + "/api/v1/model").json()["result"]
    assert out["chat"]["text"].strip() and out["chat"]["chunks"] >= 2, out["chat"]
    assert out["characters"] == "blocked: TypeError"
    assert out["backup"] == "blocked: TypeError"
    assert out["import"] == "opaque"  # the browser sent it; the server must have refused it
    names = [c["name"] for c in httpx.get(live.url + "/api/characters").json()]
    assert "Intruder" not in names
    # the same upload from a program (no Origin) is stored: the page was stopped by the Origin check
    files = {"file": ("intruder.json", json.dumps(CARD).encode(), "application/json")}
    assert httpx.post(live.url + "/api/characters/import", files=files).status_code == 201


KEY = "phone-on-wifi"


@pytest.fixture(scope="module")
def keyed(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(engine, tmp_path_factory.mktemp("ui-login"), api_key=KEY)
    yield server
    server.stop()


def test_log_in_once_and_stay_logged_in(page: Page, keyed: LiveServer) -> None:
    page.goto(keyed.url + "/")
    expect(page).to_have_url(keyed.url + "/login")
    page.locator("body[data-ready=true]").wait_for()
    expect(page.locator("h1")).to_have_text("Log in")
    page.locator("#login-key").fill("not the key")
    page.locator("#login-submit").click()
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("Wrong key")
    shot(page, "login-wrong-key.png")

    page.locator("#login-key").fill(KEY)
    page.locator("#login-key").press("Enter")
    page.locator("#app").wait_for()
    expect(page).to_have_url(keyed.url + "/")
    page.locator("body[data-ready=true]").wait_for()
    expect(page.locator(".error")).to_have_count(0)
    cookie = next(c for c in page.context.cookies() if c["name"] == f"kataribe_session_{keyed.port}")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

    page.reload()
    page.locator("body[data-ready=true]").wait_for()
    expect(page).to_have_url(keyed.url + "/")
    with page.expect_response(
        lambda r: r.url.endswith("/api/session") and r.request.method == "DELETE"
    ) as out:
        page.locator("#logout").click()
    assert out.value.status == 204
    expect(page).to_have_url(keyed.url + "/login")
    page.goto(keyed.url + "/")
    expect(page).to_have_url(keyed.url + "/login")


def test_the_log_in_page_speaks_japanese(browser: Browser, keyed: LiveServer) -> None:
    with browser_tab(browser, locale="ja-JP") as tab:
        tab.goto(keyed.url + "/")
        tab.locator("body[data-ready=true]").wait_for()
        expect(tab.locator("h1")).to_have_text("ログイン")
        expect(tab.locator("#login-submit")).to_have_text("ログイン")
        tab.locator("#login-key").fill("違う")
        tab.locator("#login-submit").click()
        expect(tab.locator("#login-error")).to_contain_text("キーが違います")
        shot(tab, "login-ja.png")


def test_the_apps_own_writes_work_with_the_cookie(page: Page, keyed: LiveServer) -> None:
    page.goto(keyed.url + "/login")
    page.locator("body[data-ready=true]").wait_for()
    page.locator("#login-key").fill(KEY)
    page.locator("#login-submit").click()
    page.locator("#app").wait_for()
    page.locator("body[data-ready=true]").wait_for()
    status = page.evaluate(
        """async () => (await fetch("/api/personas", { method: "POST",
             headers: { "Content-Type": "application/json" },
             body: JSON.stringify({ name: "Phone" }) })).status"""
    )
    assert status == 201
    personas = httpx.get(keyed.url + "/api/personas", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert "Phone" in [p["name"] for p in personas]


def test_a_page_on_another_port_cannot_use_the_apps_cookie(
    page: Page, keyed: LiveServer, other_app: str
) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    created = httpx.post(keyed.url + "/api/characters", json={"name": "Private"}, headers=auth)
    assert created.status_code == 201, created.text
    export = f"/api/characters/{created.json()['id']}/export"  # a PNG: an <img> can load it
    page.goto(keyed.url + "/login")
    page.locator("body[data-ready=true]").wait_for()
    page.locator("#login-key").fill(KEY)
    page.locator("#login-submit").click()
    page.locator("#app").wait_for()
    own = page.evaluate(
        """(src) => new Promise((done) => { const img = new Image();
             img.onload = () => done("loaded"); img.onerror = () => done("error"); img.src = src; })""",
        export,
    )
    assert own == "loaded"  # the app's own pages use the cookie

    page.goto(f"{other_app}/images?server={keyed.url}&path={export}&path=/api/backup")
    page.locator("body[data-done=true]").wait_for()
    out = json.loads(page.locator("#result").text_content() or "{}")
    assert out == {export: "error", "/api/backup": "error"}, out

    page.locator("#open").click()  # a link to the app still opens it, logged in
    page.locator("#app").wait_for()
    expect(page).to_have_url(keyed.url + "/")


def test_a_page_on_another_port_cannot_load_the_librarys_files_without_a_key(
    page: Page, live: LiveServer, other_app: str
) -> None:
    # <img> requests carry no Origin: the Origin check alone let any page (on any port, on any
    # site) load card exports (and make the server build whole backups)
    created = httpx.post(live.url + "/api/characters", json={"name": "Private too"})
    assert created.status_code == 201, created.text
    export = f"/api/characters/{created.json()['id']}/export"
    page.goto(f"{other_app}/images?server={live.url}&path={export}")
    page.locator("body[data-done=true]").wait_for()
    out = json.loads(page.locator("#result").text_content() or "{}")
    assert out == {export: "error"}, out
    page.locator("#open").click()  # a link to the app still opens it
    page.locator("body[data-ready=true]").wait_for()
    expect(page).to_have_url(live.url + "/")
    own = page.evaluate(
        """(src) => new Promise((done) => { const img = new Image();
             img.onload = () => done("loaded"); img.onerror = () => done("error"); img.src = src; })""",
        export,
    )
    assert own == "loaded"
