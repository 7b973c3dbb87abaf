// Japanese and English UI text. Japanese by default when the browser prefers it.

let table = {};
let current = "en";
const extra = { en: {}, ja: {} };

// Pages bring their own strings: addMessages({ en: {...}, ja: {...} }).
export function addMessages(messages) {
  for (const lang of ["en", "ja"]) Object.assign(extra[lang], messages[lang] || {});
}

export function language() { return current; }

export function t(key, vars = {}) {
  let text = table[key] ?? extra[current][key] ?? extra.en[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

export function preferredLanguage() {
  const saved = localStorage.getItem("kataribe.lang");
  if (saved === "ja" || saved === "en") return saved;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language || "en"];
  return wanted.some((l) => l.toLowerCase().startsWith("ja")) ? "ja" : "en";
}

export async function setLanguage(lang) {
  const res = await fetch(`/static/i18n/${lang === "ja" ? "ja" : "en"}.json`);
  table = await res.json();
  current = lang === "ja" ? "ja" : "en";
  localStorage.setItem("kataribe.lang", current);
  document.documentElement.lang = current;
  applyStatic(document);
  window.dispatchEvent(new CustomEvent("kataribe:language", { detail: current }));
}

// Elements marked data-i18n / data-i18n-placeholder / data-i18n-title get their text translated.
export function applyStatic(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
}
