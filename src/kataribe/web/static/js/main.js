// The app shell: language, theme, sidebar (chats grouped by character), and a hash router.
import { api } from "./api.js";
import { clear, el, toast } from "./dom.js";
import { applyStatic, preferredLanguage, setLanguage, t } from "./i18n.js";

const routes = {
  chat: () => import("./pages/chat.js"),
  characters: () => import("./pages/gallery.js"),
  personas: () => import("./pages/personas.js"),
  lorebooks: () => import("./pages/lorebooks.js"),
  groups: () => import("./pages/groups.js"),
  models: () => import("./pages/models.js"),
};

export const app = {
  main: null,
  panel: null,
  refreshChats: async () => {},
};

// One page render at a time: a hash change during a render (a save that navigates, a quick second click)
// waits for it instead of interleaving two pages in <main>; renders already overtaken are skipped.
let rendering = Promise.resolve();
let latestRoute = 0;
function route() {
  const mine = ++latestRoute;
  rendering = rendering.then(() => (mine === latestRoute ? render() : undefined));
  return rendering;
}

async function render() {
  const [name, ...args] = (location.hash.replace(/^#\/?/, "") || "characters").split("/");
  const load = routes[name] || routes.characters;
  clear(app.main);
  app.panel.hidden = true;
  app.panel.classList.remove("open");
  clear(app.panel);
  try {
    const page = await load();
    await page.show(app, ...args.map(decodeURIComponent));
  } catch (err) {
    app.main.append(el("p", { class: "error", text: t("error.generic", { message: err.message }) }));
  }
  for (const a of document.querySelectorAll(".nav a")) a.classList.toggle("active", location.hash.startsWith(a.getAttribute("href")));
  document.getElementById("panel-toggle").hidden = app.panel.hidden;
}

async function refreshChats(query = "") {
  const list = document.getElementById("chat-list");
  const [chats, characters, groupList] = await Promise.all([api("/api/chats"), api("/api/characters"), api("/api/groups")]);
  const names = new Map(characters.map((c) => [c.id, c.name]));
  const groupNames = new Map(groupList.map((g) => [g.id, t("sidebar.groupChats", { name: g.name })]));
  const groups = new Map();
  for (const chat of chats) {
    if (query && !chat.title.toLowerCase().includes(query.toLowerCase())) continue;
    const key = chat.character_id ? names.get(chat.character_id) || "?" : groupNames.get(chat.group_id) || "?";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(chat);
  }
  clear(list);
  for (const [who, items] of groups) {
    list.append(el("div", { class: "chat-group" },
      el("div", { class: "chat-group-title", text: who }),
      ...items.map((c) => el("a", { class: "chat-link", href: `#/chat/${c.id}`, dataset: { chatId: c.id },
        text: `${c.title} · ${c.message_count}` }))));
  }
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("kataribe.theme", theme);
}

// With an API key the browser is logged in by a session cookie (login.html); offer to end it.
async function showLogout() {
  const session = await api("/api/session");
  const button = document.getElementById("logout");
  button.hidden = !session.logged_in;
  button.addEventListener("click", async () => {
    await api("/api/session", { method: "DELETE" });
    location.assign("/login");
  });
}

async function start() {
  app.main = document.getElementById("main");
  app.panel = document.getElementById("panel");
  app.refreshChats = refreshChats;
  setTheme(localStorage.getItem("kataribe.theme") || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
  const lang = preferredLanguage();
  const select = document.getElementById("lang-select");
  select.value = lang;
  await setLanguage(lang);
  select.addEventListener("change", async () => {
    await setLanguage(select.value);
    refreshChats(document.getElementById("chat-search").value).catch((e) => toast(e.message, "error"));
    route();
  });
  document.getElementById("theme-toggle").addEventListener("click", () =>
    setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
  document.getElementById("menu-toggle").addEventListener("click", () =>
    document.getElementById("sidebar").classList.toggle("open"));
  document.getElementById("panel-toggle").addEventListener("click", () => app.panel.classList.toggle("open"));
  const search = document.getElementById("chat-search");
  search.addEventListener("input", () => refreshChats(search.value).catch((e) => toast(e.message, "error")));
  applyStatic(document);
  showLogout().catch((e) => toast(e.message, "error"));
  window.addEventListener("hashchange", route);
  await refreshChats().catch((e) => toast(e.message, "error"));
  await route();
  document.body.dataset.ready = "true";
}

start();
