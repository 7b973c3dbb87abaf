// Talking to the server: JSON calls, uploads, and Server-Sent Events over fetch (POST bodies).

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function check(res) {
  if (res.ok) return res;
  // This server's own 401 (not a Hub or remote one passed on): the session ended (logout, restart).
  if (res.status === 401 && res.headers.get("www-authenticate")) location.assign("/login");
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    message = body?.error?.message || body?.detail?.msg || message;
  } catch (_) { /* not JSON */ }
  throw new ApiError(res.status, message);
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await check(await fetch(path, init));
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("application/json") ? res.json() : res;
}

export async function upload(path, file, fields = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) form.append(k, String(v));
  const res = await check(await fetch(path, { method: "POST", body: form }));
  return res.json();
}

// POST and read an SSE answer: onEvent(kind, data) for each event. Abort with the signal.
export async function stream(path, body, onEvent, { signal } = {}) {
  const res = await check(await fetch(path, {
    method: "POST", signal, headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body ?? {}),
  }));
  const reader = res.body.getReader();
  const decoder = new TextDecoder("utf-8"); // stream mode: multi-byte characters are never split
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) {
        let parsed = data.join("\n");
        try { parsed = JSON.parse(parsed); } catch (_) { /* plain text */ }
        onEvent(kind, parsed);
      }
    }
    if (done) return;
  }
}

export async function renderMarkdown(texts) {
  if (!texts.length) return [];
  return (await api("/api/render", { method: "POST", body: { texts } })).html;
}
