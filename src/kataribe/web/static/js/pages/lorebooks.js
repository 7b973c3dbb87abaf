// The lorebook library (#/lorebooks) and one book's editor (#/lorebooks/<id>): entries, test box, links.
import { api, upload } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";
import {
  POSITIONS, entryForm, entryLabel, newEntry, optBoolSelect, optIntInput, readOptBool, readOptInt,
} from "./lorebook_entry.js";

addMessages({
  en: {
    "lore.title": "Lorebooks", "lore.import": "Import a lorebook", "lore.drop": "Drop a lorebook file here (SillyTavern, Character Card book, RisuAI, NovelAI)",
    "lore.create": "New lorebook", "lore.name": "Name", "lore.entries": "Entries", "lore.global": "Global",
    "lore.open": "Open", "lore.delete": "Delete", "lore.confirmDelete": "Delete the lorebook “{name}”?", "lore.none": "No lorebooks yet.",
    "lore.imported": "Imported “{name}” ({count} entries).", "lore.back": "← All lorebooks", "lore.save": "Save",
    "lore.saved": "Saved.", "lore.unsaved": "Unsaved changes", "lore.description": "Description",
    "lore.scanDepth": "Scan depth (empty: global setting)", "lore.tokenBudget": "Token budget (empty: global setting)",
    "lore.recursive": "Recursive scanning", "lore.useGlobal": "(global setting)", "lore.yes": "yes", "lore.no": "no",
    "lore.export": "Export", "lore.download": "Download", "lore.link": "Link to character", "lore.linkBtn": "Link",
    "lore.unlinkBtn": "Unlink", "lore.linked": "Linked to {name}.", "lore.unlinked": "Unlinked from {name}.",
    "lore.linksTitle": "Linked to", "lore.noLinks": "Not linked to any character, chat or persona.",
    "lore.kind.character": "Character", "lore.kind.chat": "Chat", "lore.kind.persona": "Persona",
    "lore.untitledChat": "Chat #{id}", "lore.unlinkName": "Unlink {name}",
    "lore.search": "Search keys, comment, content", "lore.anyPosition": "Any position", "lore.anyState": "Enabled and disabled",
    "lore.enabledOnly": "Enabled only", "lore.disabledOnly": "Disabled only", "lore.addEntry": "Add entry",
    "lore.deleteEntry": "Delete entry", "lore.shown": "{shown} of {total} entries", "lore.pick": "Pick an entry to edit it.",
    "lore.col.label": "Entry", "lore.col.keys": "Keys", "lore.col.position": "Position", "lore.col.state": "State",
    "lore.on": "on", "lore.off": "off", "lore.onePerLine": "one per line",
    "lore.test": "Test", "lore.testHelp": "Type a chat message: the entries that fire for it are listed with the reason.",
    "lore.testRun": "Test entries", "lore.activated": "Fires ({count})", "lore.skipped": "Skipped ({count})",
    "lore.tokens": "{used} of {budget} tokens", "lore.nothing": "Nothing fires for this text.",
    "lore.badInt": "“{field}” must be a whole number.",
    "lore.keyRefused": "Not used: {key} — {reason}.",
    "lore.keyTimeLimited": "{key} needs backtracking (lookaround or a backreference): it runs with a time limit and is left out when a text takes too long.",
    "lore.f.comment": "Comment (title)", "lore.f.keys": "Keys", "lore.f.secondary_keys": "Secondary keys",
    "lore.f.content": "Content", "lore.f.constant": "Constant (always on)", "lore.f.selective": "Selective (use secondary keys)",
    "lore.f.selective_logic": "Secondary key logic", "lore.f.order": "Insertion order", "lore.f.position": "Position",
    "lore.f.depth": "Depth", "lore.f.role": "Role (at depth)", "lore.f.probability": "Probability %",
    "lore.f.use_probability": "Use probability", "lore.f.disabled": "Disabled",
    "lore.f.exclude_recursion": "Exclude from recursion", "lore.f.prevent_recursion": "Prevent further recursion",
    "lore.f.delay_until_recursion": "Delay until recursion (level, 0 = off)", "lore.f.scan_depth": "Scan depth",
    "lore.f.case_sensitive": "Case sensitive", "lore.f.match_whole_words": "Match whole words",
    "lore.f.group": "Inclusion group", "lore.f.group_override": "Prioritise in group", "lore.f.group_weight": "Group weight",
    "lore.f.use_group_scoring": "Group scoring", "lore.f.sticky": "Sticky (turns)", "lore.f.cooldown": "Cooldown (turns)",
    "lore.f.delay": "Delay (messages)", "lore.f.use_regex": "Keys are regular expressions",
    "lore.x.title": "SillyTavern options", "lore.x.filterNames": "Character filter: names",
    "lore.x.filterTags": "Character filter: tags", "lore.x.filterExclude": "Exclude these characters instead",
    "lore.x.triggers": "Fires on (none checked: every kind of generation)", "lore.x.trigger.normal": "Normal",
    "lore.x.trigger.continue": "Continue", "lore.x.trigger.impersonate": "Impersonate", "lore.x.trigger.swipe": "Swipe",
    "lore.x.trigger.regenerate": "Regenerate", "lore.x.trigger.quiet": "Quiet (background)",
    "lore.x.ignoreBudget": "Ignore the token budget", "lore.x.matches": "Also match keys in",
    "lore.x.match.matchPersonaDescription": "Persona description", "lore.x.match.matchCharacterDescription": "Character description",
    "lore.x.match.matchCharacterPersonality": "Character personality", "lore.x.match.matchCharacterDepthPrompt": "Character's note",
    "lore.x.match.matchScenario": "Scenario", "lore.x.match.matchCreatorNotes": "Creator's notes",
  },
  ja: {
    "lore.title": "ロアブック", "lore.import": "ロアブックを読み込む", "lore.drop": "ロアブックのファイルをここにドロップ（SillyTavern・キャラクターカード・RisuAI・NovelAI）",
    "lore.create": "新しいロアブック", "lore.name": "名前", "lore.entries": "エントリー", "lore.global": "グローバル",
    "lore.open": "開く", "lore.delete": "削除", "lore.confirmDelete": "ロアブック「{name}」を削除しますか？", "lore.none": "ロアブックはまだありません。",
    "lore.imported": "「{name}」を読み込みました（{count} 件）。", "lore.back": "← ロアブック一覧", "lore.save": "保存",
    "lore.saved": "保存しました。", "lore.unsaved": "未保存の変更があります", "lore.description": "説明",
    "lore.scanDepth": "スキャン深度（空欄: 全体設定）", "lore.tokenBudget": "トークン予算（空欄: 全体設定）",
    "lore.recursive": "再帰スキャン", "lore.useGlobal": "（全体設定）", "lore.yes": "はい", "lore.no": "いいえ",
    "lore.export": "書き出し", "lore.download": "ダウンロード", "lore.link": "キャラクターに紐付け", "lore.linkBtn": "紐付け",
    "lore.unlinkBtn": "解除", "lore.linked": "{name} に紐付けました。", "lore.unlinked": "{name} との紐付けを解除しました。",
    "lore.linksTitle": "紐付け先", "lore.noLinks": "キャラクター・チャット・ペルソナのどれにも紐付いていません。",
    "lore.kind.character": "キャラクター", "lore.kind.chat": "チャット", "lore.kind.persona": "ペルソナ",
    "lore.untitledChat": "チャット #{id}", "lore.unlinkName": "{name} との紐付けを解除",
    "lore.search": "キー・コメント・内容を検索", "lore.anyPosition": "すべての位置", "lore.anyState": "有効と無効",
    "lore.enabledOnly": "有効のみ", "lore.disabledOnly": "無効のみ", "lore.addEntry": "エントリーを追加",
    "lore.deleteEntry": "エントリーを削除", "lore.shown": "{total} 件中 {shown} 件", "lore.pick": "編集するエントリーを選んでください。",
    "lore.col.label": "エントリー", "lore.col.keys": "キー", "lore.col.position": "位置", "lore.col.state": "状態",
    "lore.on": "有効", "lore.off": "無効", "lore.onePerLine": "1 行に 1 つ",
    "lore.test": "テスト", "lore.testHelp": "チャットの文を入力すると、発動するエントリーとその理由が表示されます。",
    "lore.testRun": "エントリーをテスト", "lore.activated": "発動（{count}）", "lore.skipped": "スキップ（{count}）",
    "lore.tokens": "{budget} トークン中 {used}", "lore.nothing": "この文では何も発動しません。",
    "lore.badInt": "「{field}」は整数で入力してください。",
    "lore.keyRefused": "使われません: {key} — {reason}。",
    "lore.keyTimeLimited": "{key} はバックトラックが必要です（先読み・後読み・後方参照）。時間制限つきで実行され、長い文で時間切れになると使われません。",
    "lore.f.comment": "コメント（タイトル）", "lore.f.keys": "キー", "lore.f.secondary_keys": "副キー",
    "lore.f.content": "内容", "lore.f.constant": "常時有効", "lore.f.selective": "選択的（副キーを使う）",
    "lore.f.selective_logic": "副キーの条件", "lore.f.order": "挿入順", "lore.f.position": "位置",
    "lore.f.depth": "深度", "lore.f.role": "ロール（深度指定時）", "lore.f.probability": "確率 %",
    "lore.f.use_probability": "確率を使う", "lore.f.disabled": "無効",
    "lore.f.exclude_recursion": "再帰から除外", "lore.f.prevent_recursion": "以降の再帰を防ぐ",
    "lore.f.delay_until_recursion": "再帰まで遅延（レベル、0 = なし）", "lore.f.scan_depth": "スキャン深度",
    "lore.f.case_sensitive": "大文字小文字を区別", "lore.f.match_whole_words": "単語単位で一致",
    "lore.f.group": "包含グループ", "lore.f.group_override": "グループ内で優先", "lore.f.group_weight": "グループの重み",
    "lore.f.use_group_scoring": "グループのスコアリング", "lore.f.sticky": "持続（ターン）", "lore.f.cooldown": "クールダウン（ターン）",
    "lore.f.delay": "遅延（メッセージ数）", "lore.f.use_regex": "キーは正規表現",
    "lore.x.title": "SillyTavern の追加設定", "lore.x.filterNames": "キャラクターフィルター: 名前",
    "lore.x.filterTags": "キャラクターフィルター: タグ", "lore.x.filterExclude": "これらのキャラクターを除外する",
    "lore.x.triggers": "発動する生成（未選択: すべて）", "lore.x.trigger.normal": "通常",
    "lore.x.trigger.continue": "続き", "lore.x.trigger.impersonate": "代筆", "lore.x.trigger.swipe": "スワイプ",
    "lore.x.trigger.regenerate": "再生成", "lore.x.trigger.quiet": "バックグラウンド",
    "lore.x.ignoreBudget": "トークン予算を無視", "lore.x.matches": "キーを次の中でも探す",
    "lore.x.match.matchPersonaDescription": "ペルソナの説明", "lore.x.match.matchCharacterDescription": "キャラクターの説明",
    "lore.x.match.matchCharacterPersonality": "キャラクターの性格", "lore.x.match.matchCharacterDepthPrompt": "キャラクターノート",
    "lore.x.match.matchScenario": "シナリオ", "lore.x.match.matchCreatorNotes": "作者のメモ",
  },
});

const EXPORTS = ["sillytavern", "character_book", "lorebook_v3", "risu", "novelai"];
const MAX_ROWS = 500; // a book with thousands of entries stays responsive; the filter narrows it

export async function show(app, bookId) {
  loadCss("lorebooks");
  if (bookId !== undefined && bookId !== "") return showEditor(app, Number(bookId));
  return showLibrary(app);
}

// -- the library --

async function showLibrary(app) {
  const list = el("div", { class: "lore-list" });
  const fileInput = el("input", { type: "file", id: "lore-file", accept: ".json,application/json" });
  const drop = el("div", { class: "dropzone", id: "lore-drop", text: t("lore.drop") });
  const nameInput = el("input", { id: "lore-new-name", placeholder: t("lore.name") });
  const createBtn = el("button", { id: "lore-create", class: "primary", type: "button", text: t("lore.create") });
  app.main.append(el("section", { class: "page lore-page" },
    el("h2", { text: t("lore.title") }),
    el("div", { class: "lore-actions" },
      el("label", {}, t("lore.import"), " ", fileInput),
      el("span", { class: "lore-create" }, nameInput, createBtn)),
    drop, list));

  async function refresh() {
    const books = await api("/api/lorebooks");
    clear(list);
    if (!books.length) { list.append(el("p", { class: "empty", text: t("lore.none") })); return; }
    list.append(el("table", { class: "data lore-books" },
      el("thead", {}, el("tr", {}, ...["lore.name", "lore.entries", "lore.global", ""].map((k) => el("th", { text: k ? t(k) : "" })))),
      el("tbody", {}, ...books.map((b) => el("tr", { dataset: { bookId: b.id } },
        el("td", {}, el("a", { class: "lore-open", href: `#/lorebooks/${b.id}`, text: b.name })),
        el("td", { class: "lore-count", text: String(b.entry_count) }),
        el("td", { text: b.is_global ? "✓" : "" }),
        el("td", {}, el("button", { class: "danger lore-delete", type: "button", text: t("lore.delete"), onclick: async () => {
          if (!confirm(t("lore.confirmDelete", { name: b.name }))) return;
          await api(`/api/lorebooks/${b.id}`, { method: "DELETE" }).catch((e) => toast(e.message, "error"));
          await refresh();
        } })))))));
  }

  async function importFile(file) {
    try {
      const book = await upload("/api/lorebooks/import", file);
      toast(t("lore.imported", { name: book.name, count: book.entry_count }));
      await refresh();
    } catch (err) { toast(err.message, "error"); }
  }

  fileInput.addEventListener("change", () => { if (fileInput.files[0]) importFile(fileInput.files[0]); fileInput.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) importFile(file);
  });
  createBtn.addEventListener("click", async () => {
    const name = nameInput.value.trim();
    try {
      const book = await api("/api/lorebooks", { method: "POST", body: { name, data: { name, entries: [] } } });
      location.hash = `#/lorebooks/${book.id}`;
    } catch (err) { toast(err.message, "error"); }
  });
  await refresh();
}

// -- one book --

async function showEditor(app, id) {
  const [book, characters, links] = await Promise.all([
    api(`/api/lorebooks/${id}`), api("/api/characters"), api(`/api/lorebooks/${id}/links`)]);
  const state = { book, data: book.data, selected: null, dirty: false };
  const status = el("span", { class: "lore-status", id: "lore-status" });
  const markDirty = () => { state.dirty = true; status.textContent = t("lore.unsaved"); };

  const nameInput = el("input", { id: "lore-name" });
  nameInput.value = book.name;
  const globalBox = el("input", { type: "checkbox", id: "lore-global" });
  globalBox.checked = book.is_global;
  const description = el("textarea", { id: "lore-description", rows: 2 });
  description.value = state.data.description || "";
  const scanDepth = optIntInput("lore-scan-depth", state.data.scan_depth);
  const tokenBudget = optIntInput("lore-token-budget", state.data.token_budget);
  const recursive = optBoolSelect("lore-recursive", state.data.recursive_scanning);
  for (const node of [nameInput, globalBox, description, scanDepth, tokenBudget, recursive]) node.addEventListener("input", markDirty);

  const saveBtn = el("button", { id: "lore-save", class: "primary", type: "button", text: t("lore.save"), onclick: () => save() });
  const settings = el("div", { class: "form lore-settings" },
    el("label", {}, t("lore.name"), nameInput),
    el("label", { class: "check" }, globalBox, t("lore.global")),
    el("label", {}, t("lore.description"), description),
    el("div", { class: "lore-row" }, el("label", {}, t("lore.scanDepth"), scanDepth),
      el("label", {}, t("lore.tokenBudget"), tokenBudget), el("label", {}, t("lore.recursive"), recursive)));

  const exportSelect = el("select", { id: "lore-export-format" }, ...EXPORTS.map((f) => el("option", { value: f, text: f })));
  const exportLink = el("a", { id: "lore-export", class: "button", download: "", href: `/api/lorebooks/${id}/export?format=sillytavern`, text: t("lore.download") });
  exportSelect.addEventListener("change", () => exportLink.setAttribute("href", `/api/lorebooks/${id}/export?format=${exportSelect.value}`));
  // links: what the book is linked to (characters and chats can be unlinked here; personas on their page)
  const charSelect = el("select", { id: "lore-link-character", "aria-label": t("lore.link") });
  const linkBtn = el("button", { id: "lore-link", type: "button", text: t("lore.linkBtn"), onclick: async () => {
    const option = charSelect.selectedOptions[0];
    if (option) await setLink({ character_id: Number(option.value) }, option.textContent, true);
  } });
  const linkList = el("ul", { class: "lore-links", id: "lore-links", "aria-label": t("lore.linksTitle") });
  const noLinks = el("p", { class: "empty", id: "lore-no-links", text: t("lore.noLinks") });

  async function setLink(target, name, linked) {
    try {
      await api(`/api/lorebooks/${id}/links`, { method: "POST", body: { ...target, linked } });
      toast(t(linked ? "lore.linked" : "lore.unlinked", { name }));
    } catch (err) { toast(err.message, "error"); }
    await refreshLinks();
  }

  async function refreshLinks() {
    try {
      renderLinks(await api(`/api/lorebooks/${id}/links`));
    } catch (err) { toast(err.message, "error"); }
  }

  function renderLinks(links) {
    const linked = new Set(links.characters.map((c) => c.id));
    const free = characters.filter((c) => !linked.has(c.id));
    clear(charSelect).append(...free.map((c) => el("option", { value: c.id, text: String(c.name ?? "") })));
    linkBtn.disabled = !free.length;
    charSelect.disabled = !free.length;
    const item = (kind, ident, name, target) => el("li", { class: "lore-link-item", dataset: { kind, id: ident } },
      el("span", { class: "tag lore-link-kind", text: t(`lore.kind.${kind}`) }), " ",
      el("span", { class: "lore-link-name", text: name }),
      target ? el("button", { class: "lore-unlink-one", type: "button", text: t("lore.unlinkBtn"),
        "aria-label": t("lore.unlinkName", { name }), onclick: () => setLink(target, name, false) }) : null);
    clear(linkList).append(
      ...links.characters.map((c) => item("character", c.id, String(c.name ?? ""), { character_id: c.id })),
      ...links.chats.map((c) => {
        const title = String(c.title ?? "") || t("lore.untitledChat", { id: c.id });
        return item("chat", c.id, title, { chat_id: c.id });
      }),
      ...links.personas.map((p) => item("persona", p.id, String(p.name ?? ""), null)));
    noLinks.hidden = linkList.childElementCount > 0;
  }

  const tools = el("div", { class: "lore-tools" },
    el("span", {}, t("lore.export"), " ", exportSelect, " ", exportLink),
    el("span", {}, t("lore.link"), " ", charSelect, " ", linkBtn));
  const linksBox = el("div", { class: "lore-links-box" }, el("h3", { text: t("lore.linksTitle") }), linkList, noLinks);

  // entries: filters, table, form
  const search = el("input", { type: "search", id: "lore-filter-text", placeholder: t("lore.search") });
  const posFilter = el("select", { id: "lore-filter-position" }, el("option", { value: "", text: t("lore.anyPosition") }),
    ...POSITIONS.map((p) => el("option", { value: p, text: p })));
  const stateFilter = el("select", { id: "lore-filter-state" }, el("option", { value: "", text: t("lore.anyState") }),
    el("option", { value: "enabled", text: t("lore.enabledOnly") }), el("option", { value: "disabled", text: t("lore.disabledOnly") }));
  const shown = el("span", { class: "lore-shown", id: "lore-shown" });
  const tbody = el("tbody", {});
  const formHost = el("div", { class: "lore-entry-form", id: "lore-entry-form" }, el("p", { class: "empty", text: t("lore.pick") }));
  for (const node of [search, posFilter, stateFilter]) node.addEventListener("input", renderTable);

  function matches(entry) {
    const q = search.value.trim().toLowerCase();
    if (q && ![...entry.keys, ...entry.secondary_keys, entry.comment, entry.content].some((s) => String(s).toLowerCase().includes(q))) return false;
    if (posFilter.value && entry.position !== posFilter.value) return false;
    if (stateFilter.value === "enabled" && entry.disabled) return false;
    if (stateFilter.value === "disabled" && !entry.disabled) return false;
    return true;
  }

  function renderTable() {
    const hits = state.data.entries.filter(matches);
    shown.textContent = t("lore.shown", { shown: hits.length, total: state.data.entries.length });
    clear(tbody);
    for (const entry of hits.slice(0, MAX_ROWS)) {
      tbody.append(el("tr", { class: `lore-entry${entry === state.selected ? " selected" : ""}${entry.disabled ? " disabled" : ""}`,
        dataset: { uid: entry.uid }, onclick: () => select(entry) },
        el("td", { text: String(entry.uid) }),
        el("td", { class: "lore-label", text: entryLabel(entry) }),
        el("td", { class: "lore-keys", text: entry.keys.join(", ") }),
        el("td", { text: entry.position }),
        el("td", { text: entry.disabled ? t("lore.off") : t("lore.on") })));
    }
  }

  function select(entry) {
    state.selected = entry;
    clear(formHost).append(entryForm(entry, () => { markDirty(); renderTable(); }));
    renderTable();
  }

  const addBtn = el("button", { id: "lore-add-entry", type: "button", text: t("lore.addEntry"), onclick: () => {
    const uids = state.data.entries.map((e) => e.uid).filter((u) => Number.isInteger(u));
    const entry = newEntry(uids.length ? Math.max(...uids) + 1 : 0);
    state.data.entries.push(entry);
    markDirty();
    select(entry);
  } });
  const delBtn = el("button", { id: "lore-delete-entry", class: "danger", type: "button", text: t("lore.deleteEntry"), onclick: () => {
    if (!state.selected) return;
    state.data.entries = state.data.entries.filter((e) => e !== state.selected);
    state.selected = null;
    clear(formHost).append(el("p", { class: "empty", text: t("lore.pick") }));
    markDirty();
    renderTable();
  } });

  // test box
  const testText = el("textarea", { id: "lore-test-text", rows: 3, placeholder: t("lore.testHelp") });
  const testOut = el("div", { class: "lore-test-results", id: "lore-test-results" });
  const testBtn = el("button", { id: "lore-test-run", class: "primary", type: "button", text: t("lore.testRun"), onclick: async () => {
    try {
      if (state.dirty && !(await save())) return;
      showTest(testOut, await api(`/api/lorebooks/${id}/test`, { method: "POST", body: { text: testText.value } }), state.data.entries);
    } catch (err) { toast(err.message, "error"); }
  } });

  async function save() {
    try {
      const data = { ...state.data, name: nameInput.value.trim(), description: description.value,
        scan_depth: readOptInt(scanDepth, t("lore.scanDepth")), token_budget: readOptInt(tokenBudget, t("lore.tokenBudget")),
        recursive_scanning: readOptBool(recursive) };
      const saved = await api(`/api/lorebooks/${id}`, { method: "PATCH", body: { name: data.name, is_global: globalBox.checked, data } });
      state.data.name = saved.data.name;
      state.dirty = false;
      status.textContent = t("lore.saved");
      return true;
    } catch (err) {
      toast(err.message, "error");
      return false;
    }
  }

  app.main.append(el("section", { class: "page lore-editor" },
    el("a", { href: "#/lorebooks", class: "lore-back", text: t("lore.back") }),
    el("h2", { text: book.name }),
    el("div", { class: "lore-savebar" }, saveBtn, status),
    settings, tools, linksBox,
    el("div", { class: "lore-body" },
      el("div", { class: "lore-entries" },
        el("div", { class: "lore-filters" }, search, posFilter, stateFilter, shown),
        el("div", { class: "lore-entry-buttons" }, addBtn, delBtn),
        el("div", { class: "lore-table-wrap" }, el("table", { class: "data lore-entries-table", id: "lore-entries" },
          el("thead", {}, el("tr", {}, el("th", { text: "#" }), ...["label", "keys", "position", "state"].map((k) => el("th", { text: t(`lore.col.${k}`) })))),
          tbody))),
      formHost),
    el("div", { class: "lore-test" }, el("h3", { text: t("lore.test") }), testText, testBtn, testOut)));
  renderTable();
  renderLinks(links);
}

function showTest(out, result, entries) {
  const byUid = new Map(entries.map((e) => [String(e.uid), e]));
  const labelOf = (uid, comment) => comment || (byUid.get(String(uid)) ? entryLabel(byUid.get(String(uid))) : `#${uid}`);
  clear(out);
  out.append(el("p", { class: "token-count", text: t("lore.tokens", { used: result.tokens_used, budget: result.budget }) }));
  if (!result.activated.length && !result.skipped.length) { out.append(el("p", { class: "empty", text: t("lore.nothing") })); return; }
  out.append(el("h4", { text: t("lore.activated", { count: result.activated.length }) }),
    el("ul", { class: "lore-fired", id: "lore-fired" }, ...result.activated.map((a) => el("li", { dataset: { uid: a.uid } },
      el("strong", { text: labelOf(a.uid, a.comment) }), " ", el("span", { class: "lore-reason", text: a.reason }),
      " ", el("span", { class: "tag", text: a.position })))),
    el("h4", { text: t("lore.skipped", { count: result.skipped.length }) }),
    el("ul", { class: "lore-skipped", id: "lore-skipped" }, ...result.skipped.map((s) => el("li", { dataset: { uid: s.uid } },
      el("strong", { text: labelOf(s.uid, "") }), " ", el("span", { class: "lore-reason", text: s.reason }),
      s.detail ? el("span", { class: "lore-detail", text: ` — ${s.detail}` }) : null))));
}
