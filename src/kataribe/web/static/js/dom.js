// Safe DOM building: untrusted text only ever goes in as text, never as HTML.
// The single exception is setSanitizedHtml(), for HTML the server cleaned with an allow-list.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "href" || key === "src") node.setAttribute(key, safeUrl(value));
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Only same-origin paths, fragments and http(s) links; javascript:, data: and the rest become "#".
export function safeUrl(url) {
  const text = String(url).trim();
  if (text.startsWith("#") || (text.startsWith("/") && !text.startsWith("//"))) return text;
  try {
    const parsed = new URL(text, location.origin);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
  } catch (_) { /* not a URL */ }
  return "#";
}

// HTML produced by the server's allow-list sanitizer (/api/render, message.html).
export function setSanitizedHtml(node, html) {
  node.innerHTML = html;
  for (const a of node.querySelectorAll("a")) {
    a.setAttribute("href", safeUrl(a.getAttribute("href") || "#"));
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener noreferrer nofollow");
  }
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function toast(message, kind = "info") {
  const box = el("div", { class: `toast toast-${kind}`, role: "status", text: message });
  document.body.append(box);
  setTimeout(() => box.remove(), 5000);
}

// A page's own stylesheet (static/css/<name>.css), loaded once.
export function loadCss(name) {
  const href = `/static/css/${name}.css`;
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(el("link", { rel: "stylesheet", href }));
}
