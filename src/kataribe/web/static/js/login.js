// The log-in page: sends the API key once; the server answers with an HttpOnly session cookie.
import { applyStatic, preferredLanguage, setLanguage, t } from "./i18n.js";

const form = document.getElementById("login-form");
const input = document.getElementById("login-key");
const error = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function showError(message) {
  error.textContent = message;
  error.hidden = false;
}

async function logIn(event) {
  event.preventDefault();
  error.hidden = true;
  submit.disabled = true;
  try {
    const res = await fetch("/api/session", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: input.value }),
    });
    if (res.ok) {
      location.replace("/");
      return;
    }
    let message = "";
    try { message = (await res.json())?.error?.message || ""; } catch (_) { /* not JSON */ }
    if (res.status === 401) showError(t("login.wrong"));
    else if (res.status === 429) showError(t("login.tooMany"));
    else showError(t("error.generic", { message: message || `${res.status}` }));
    input.select();
  } catch (err) {
    showError(t("error.generic", { message: err.message }));
  } finally {
    submit.disabled = false;
  }
}

async function start() {
  document.documentElement.dataset.theme = localStorage.getItem("kataribe.theme")
    || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark");
  const select = document.getElementById("lang-select");
  select.value = preferredLanguage();
  await setLanguage(select.value);
  select.addEventListener("change", () => setLanguage(select.value));
  applyStatic(document);
  form.addEventListener("submit", logIn);
  input.focus();
  document.body.dataset.ready = "true";
}

start();
