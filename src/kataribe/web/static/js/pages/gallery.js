// The character gallery: search, tag and favorites filters, import (drop or picker), and per-card
// favorite/chat/edit/export/delete.
import { api, upload } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: {
    "gallery.title": "Characters",
    "gallery.import": "Import card",
    "gallery.drop": "Drop PNG, JSON or CHARX cards here, or pick files",
    "gallery.new": "New character",
    "gallery.search": "Search characters",
    "gallery.allTags": "All tags",
    "gallery.chat": "Chat",
    "gallery.edit": "Edit",
    "gallery.export": "Export",
    "gallery.empty": "No characters yet. Import a card or create one.",
    "gallery.noMatch": "No character matches.",
    "gallery.imported": "Imported {name}",
    "gallery.importFailed": "{file}: {message}",
    "gallery.confirmDelete": "Delete {name}? Its chats are deleted too.",
    "gallery.deleted": "Deleted {name}",
    "gallery.noAvatar": "No avatar",
    "gallery.favoritesOnly": "Favorites only",
    "gallery.favoriteOf": "Favorite: {name}",
    "gallery.favorite": "Add {name} to favorites",
    "gallery.unfavorite": "Remove {name} from favorites",
  },
  ja: {
    "gallery.title": "キャラクター",
    "gallery.import": "カードを読み込む",
    "gallery.drop": "PNG・JSON・CHARX のカードをここにドロップするか、ファイルを選択",
    "gallery.new": "新しいキャラクター",
    "gallery.search": "キャラクターを検索",
    "gallery.allTags": "すべてのタグ",
    "gallery.chat": "チャット",
    "gallery.edit": "編集",
    "gallery.export": "書き出し",
    "gallery.empty": "キャラクターがいません。カードを読み込むか作成してください。",
    "gallery.noMatch": "一致するキャラクターはいません。",
    "gallery.imported": "{name} を読み込みました",
    "gallery.importFailed": "{file}: {message}",
    "gallery.confirmDelete": "{name} を削除しますか？チャットも削除されます。",
    "gallery.deleted": "{name} を削除しました",
    "gallery.noAvatar": "アバターなし",
    "gallery.favoritesOnly": "お気に入りのみ",
    "gallery.favoriteOf": "お気に入り: {name}",
    "gallery.favorite": "{name} をお気に入りに追加",
    "gallery.unfavorite": "{name} をお気に入りから外す",
  },
});

const EXPORT_FORMATS = [["png", "PNG"], ["json", "JSON (V3)"], ["json_v2", "JSON (V2)"], ["charx", "CHARX"]];

// `#/characters` shows the gallery; `#/characters/new` and `#/characters/<id>` open the editor.
export async function show(app, target) {
  loadCss("gallery");
  if (target) {
    const editor = await import("./character_editor.js");
    return editor.show(app, target);
  }
  return showGallery(app);
}

export function avatarNode(sha, name) {
  if (!sha) return el("div", { class: "avatar-placeholder", role: "img", "aria-label": t("gallery.noAvatar") }, initial(name));
  return el("img", { class: "avatar", src: `/api/assets/${encodeURIComponent(sha)}`, alt: String(name ?? ""), loading: "lazy" });
}

function initial(name) {
  const first = Array.from(String(name ?? "").trim())[0];
  return first ? first.toUpperCase() : "?";
}

async function showGallery(app) {
  const state = { characters: [], query: "", tag: "", favoritesOnly: false };
  const search = el("input", { id: "gallery-search", type: "search", placeholder: t("gallery.search"), "aria-label": t("gallery.search") });
  const tagSelect = el("select", { id: "gallery-tag", "aria-label": t("gallery.allTags") });
  const favoritesBox = el("input", { id: "gallery-favorites", type: "checkbox" });
  const picker = el("input", { id: "card-file", type: "file", multiple: true, accept: ".png,.json,.charx,image/png,application/json" });
  const dropzone = el("label", { class: "dropzone", id: "card-drop" }, el("span", { text: t("gallery.drop") }), picker);
  const grid = el("div", { class: "grid gallery-grid", id: "gallery-grid" });
  const newBtn = el("button", { id: "new-character", class: "primary", type: "button", text: t("gallery.new"),
    onclick: () => { location.hash = "#/characters/new"; } });
  app.main.append(el("section", { class: "page gallery" },
    el("header", { class: "gallery-head" }, el("h2", { text: t("gallery.title") }), newBtn),
    el("div", { class: "gallery-filters" }, search, tagSelect,
      el("label", { class: "check", for: "gallery-favorites" }, favoritesBox, t("gallery.favoritesOnly"))),
    dropzone, grid));

  async function load() {
    state.characters = await api("/api/characters");
    renderTags();
    renderGrid();
  }

  function renderTags() {
    const tags = new Set();
    for (const c of state.characters) for (const tag of Array.isArray(c.tags) ? c.tags : []) tags.add(String(tag));
    if (state.tag && !tags.has(state.tag)) state.tag = "";
    clear(tagSelect);
    tagSelect.append(el("option", { value: "", text: t("gallery.allTags") }));
    for (const tag of [...tags].sort((a, b) => a.localeCompare(b))) tagSelect.append(el("option", { value: tag, text: tag }));
    tagSelect.value = state.tag;
  }

  // Filtering is local: the list is already here, and every keystroke stays instant.
  // The server lists favorites first; the stable sort keeps that true for any list.
  function renderGrid() {
    const query = state.query.trim().toLowerCase();
    const shown = state.characters.filter((c) =>
      (!query || String(c.name ?? "").toLowerCase().includes(query)) &&
      (!state.tag || (Array.isArray(c.tags) && c.tags.includes(state.tag))) &&
      (!state.favoritesOnly || c.favorite === true))
      .sort((a, b) => Number(b.favorite === true) - Number(a.favorite === true));
    clear(grid);
    if (!state.characters.length) grid.append(el("p", { class: "empty", text: t("gallery.empty") }));
    else if (!shown.length) grid.append(el("p", { class: "empty", text: t("gallery.noMatch") }));
    for (const c of shown) grid.append(cardNode(c));
  }

  function cardNode(c) {
    const tags = Array.isArray(c.tags) ? c.tags : [];
    return el("article", { class: "card character-card", dataset: { id: c.id } },
      el("a", { class: "card-avatar", href: `#/characters/${c.id}` }, avatarNode(c.avatar, c.name)),
      el("div", { class: "card-title" }, el("div", { class: "card-name", text: String(c.name ?? "") }), favoriteToggle(c)),
      el("div", { class: "tags" }, ...tags.map((tag) => el("span", { class: "tag", text: String(tag) }))),
      el("div", { class: "card-actions" },
        el("button", { class: "chat primary", type: "button", text: t("gallery.chat"), onclick: () => startChat(app, c) }),
        el("button", { class: "edit", type: "button", text: t("gallery.edit"),
          onclick: () => { location.hash = `#/characters/${c.id}`; } }),
        exportMenu(c.id),
        el("button", { class: "delete danger", type: "button", text: t("common.delete"), onclick: () => remove(c) })));
  }

  // A toggle button: the name stays, aria-pressed says the state; the tooltip says what a click does.
  function favoriteToggle(c) {
    const on = c.favorite === true;
    const name = String(c.name ?? "");
    return el("button", { class: "favorite-toggle", type: "button", text: on ? "★" : "☆",
      title: t(on ? "gallery.unfavorite" : "gallery.favorite", { name }), "aria-label": t("gallery.favoriteOf", { name }),
      "aria-pressed": String(on), onclick: () => setFavorite(c, !on) });
  }

  // Re-read the list afterwards: the server's order (favorites first, then by name) is the one shown.
  async function setFavorite(c, favorite) {
    try {
      await api(`/api/characters/${c.id}/favorite`, { method: "PUT", body: { favorite } });
      await load();
      grid.querySelector(`.character-card[data-id="${c.id}"] .favorite-toggle`)?.focus();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function remove(c) {
    if (!confirm(t("gallery.confirmDelete", { name: c.name }))) return;
    try {
      await api(`/api/characters/${c.id}`, { method: "DELETE" });
      toast(t("gallery.deleted", { name: c.name }));
      await load();
      app.refreshChats();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  // One file at a time, so each gets its own success or error message.
  async function importFiles(files) {
    for (const file of files) {
      try {
        const made = await upload("/api/characters/import", file);
        toast(t("gallery.imported", { name: made.name }));
      } catch (err) {
        toast(t("gallery.importFailed", { file: file.name, message: err.message }), "error");
      }
    }
    await load();
  }

  search.addEventListener("input", () => { state.query = search.value; renderGrid(); });
  tagSelect.addEventListener("change", () => { state.tag = tagSelect.value; renderGrid(); });
  favoritesBox.addEventListener("change", () => { state.favoritesOnly = favoritesBox.checked; renderGrid(); });
  picker.addEventListener("change", async () => {
    const files = [...picker.files];
    picker.value = "";
    await importFiles(files);
  });
  dropzone.addEventListener("dragover", (event) => { event.preventDefault(); dropzone.classList.add("over"); });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", async (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    await importFiles([...(event.dataTransfer?.files || [])]);
  });

  await load();
}

export function exportMenu(characterId) {
  return el("details", { class: "export-menu" },
    el("summary", { text: t("gallery.export") }),
    el("div", { class: "export-links" }, ...EXPORT_FORMATS.map(([format, label]) =>
      el("a", { class: `export-${format}`, href: `/api/characters/${characterId}/export?format=${format}`, download: "",
        text: label }))));
}

export async function startChat(app, character) {
  try {
    const chat = await api("/api/chats", { method: "POST", body: { character_id: character.id } });
    await app.refreshChats();
    location.hash = `#/chat/${chat.id}`;
  } catch (err) {
    toast(err.message, "error");
  }
}
