// The character editor: every card field, live token counts with the loaded model, save or create.
import { api } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";
import { avatarNode, exportMenu, startChat } from "./gallery.js";

addMessages({
  en: {
    "editor.new": "New character",
    "editor.edit": "Edit {name}",
    "editor.saved": "Saved {name}",
    "editor.created": "Created {name}",
    "editor.needName": "A character needs a name.",
    "editor.add": "Add",
    "editor.remove": "Remove",
    "editor.estimated": "(estimated)",
    "editor.total": "Total: {n} tokens",
    "editor.tokensUnknown": "— tokens",
    "editor.tagsHint": "comma separated",
    "editor.chat": "Chat",
    "field.name": "Name",
    "field.nickname": "Nickname",
    "field.description": "Description",
    "field.personality": "Personality",
    "field.scenario": "Scenario",
    "field.first_mes": "First message",
    "field.alternate_greetings": "Alternate greetings",
    "field.group_only_greetings": "Group-only greetings",
    "field.mes_example": "Example messages",
    "field.system_prompt": "System prompt",
    "field.post_history_instructions": "Post-history instructions",
    "field.creator_notes": "Creator's notes",
    "field.tags": "Tags",
    "field.creator": "Creator",
    "field.character_version": "Version",
  },
  ja: {
    "editor.new": "新しいキャラクター",
    "editor.edit": "{name} を編集",
    "editor.saved": "{name} を保存しました",
    "editor.created": "{name} を作成しました",
    "editor.needName": "キャラクターには名前が必要です。",
    "editor.add": "追加",
    "editor.remove": "削除",
    "editor.estimated": "（推定）",
    "editor.total": "合計: {n} トークン",
    "editor.tokensUnknown": "— トークン",
    "editor.tagsHint": "カンマ区切り",
    "editor.chat": "チャット",
    "field.name": "名前",
    "field.nickname": "ニックネーム",
    "field.description": "説明",
    "field.personality": "性格",
    "field.scenario": "シナリオ",
    "field.first_mes": "最初のメッセージ",
    "field.alternate_greetings": "別の挨拶",
    "field.group_only_greetings": "グループ専用の挨拶",
    "field.mes_example": "会話例",
    "field.system_prompt": "システムプロンプト",
    "field.post_history_instructions": "履歴後の指示",
    "field.creator_notes": "作者のメモ",
    "field.tags": "タグ",
    "field.creator": "作者",
    "field.character_version": "バージョン",
  },
});

// [field, kind]: the card's fields in the order SillyTavern's editor shows them.
const FIELDS = [
  ["name", "line"], ["nickname", "line"], ["description", "text"], ["personality", "text"], ["scenario", "text"],
  ["first_mes", "text"], ["alternate_greetings", "list"], ["group_only_greetings", "list"], ["mes_example", "text"],
  ["system_prompt", "text"], ["post_history_instructions", "text"], ["creator_notes", "text"], ["tags", "tags"],
  ["creator", "line"], ["character_version", "line"],
];
const COUNTED = new Set(["name", "description", "personality", "scenario", "first_mes", "mes_example", "system_prompt",
  "post_history_instructions", "creator_notes", "alternate_greetings", "group_only_greetings"]);
const TOKENIZE_LIMIT = 200; // the server's cap on texts per /api/tokenize call
const TOKENIZE_DELAY_MS = 350;

function asText(value) { return typeof value === "string" ? value : ""; }
function asList(value) { return Array.isArray(value) ? value.filter((v) => typeof v === "string") : []; }

export async function show(app, target) {
  loadCss("gallery");
  const isNew = target === "new";
  const id = isNew ? null : Number(target);
  const view = isNew ? null : await api(`/api/characters/${id}`);
  const data = (view?.card && typeof view.card.data === "object" && view.card.data) || {};
  const original = {};
  const inputs = {}; // field -> getter of its current value
  const counters = []; // { node, text } in the order their texts are sent
  const heading = el("h2", { text: isNew ? t("editor.new") : t("editor.edit", { name: asText(view.name) }) });
  const total = el("div", { class: "token-total token-count", id: "token-total" });
  const form = el("form", { class: "form character-form", id: "character-form" });
  let timer = null;
  let generation = 0;

  for (const [field, kind] of FIELDS) {
    const label = t(`field.${field}`);
    if (kind === "list") {
      original[field] = asList(data[field]);
      form.append(listField(field, label, original[field]));
    } else if (kind === "tags") {
      original[field] = asList(data[field]);
      const input = el("input", { id: `field-${field}`, name: field, type: "text", placeholder: t("editor.tagsHint") });
      input.value = original[field].join(", ");
      inputs[field] = () => input.value.split(",").map((s) => s.trim()).filter(Boolean);
      form.append(el("label", {}, el("span", { text: label }), input));
    } else {
      original[field] = asText(data[field]);
      const input = kind === "text"
        ? el("textarea", { id: `field-${field}`, name: field, rows: field === "description" ? 8 : 4 })
        : el("input", { id: `field-${field}`, name: field, type: "text" });
      input.value = original[field];
      inputs[field] = () => input.value;
      const parts = [el("span", { text: label }), input];
      if (COUNTED.has(field)) parts.push(counter(field, () => input.value).node);
      form.append(el("label", { class: `field-${field}` }, ...parts));
    }
  }

  function counter(field, text) {
    const entry = { node: el("span", { class: "token-count", dataset: { field } }), text };
    counters.push(entry);
    return entry;
  }

  function listField(field, label, values) {
    const items = el("div", { class: "greeting-list", id: `field-${field}` });
    const rows = [];
    const addRow = (value) => {
      const area = el("textarea", { class: "greeting", rows: 3, "aria-label": label });
      area.value = value;
      const entry = { area, count: null };
      const row = el("div", { class: "greeting-row" }, area,
        el("button", { class: "remove-greeting danger", type: "button", text: t("editor.remove"), onclick: () => {
          rows.splice(rows.indexOf(entry), 1);
          const at = counters.indexOf(entry.count);
          if (at >= 0) counters.splice(at, 1);
          row.remove();
          scheduleCount();
        } }));
      entry.count = counter(field, () => area.value);
      row.append(entry.count.node);
      rows.push(entry);
      items.append(row);
      return area;
    };
    for (const value of values) addRow(value);
    inputs[field] = () => rows.map((r) => r.area.value);
    const add = el("button", { class: "add-greeting", type: "button", text: t("editor.add"),
      onclick: () => { addRow("").focus(); scheduleCount(); } });
    return el("fieldset", { class: `list-field field-${field}` }, el("legend", { text: label }), items, add);
  }

  // All fields in one call, so the model's tokenizer is asked once per pause in typing.
  async function countTokens() {
    const mine = ++generation;
    const sent = counters.slice(0, TOKENIZE_LIMIT);
    try {
      const answer = await api("/api/tokenize", { method: "POST", body: { texts: sent.map((c) => c.text()) } });
      if (mine !== generation) return;
      const suffix = answer.estimated ? ` ${t("editor.estimated")}` : "";
      let sum = 0;
      sent.forEach((c, i) => {
        const n = Number(answer.counts?.[i]) || 0;
        sum += n;
        c.node.textContent = t("common.tokens", { n }) + suffix;
      });
      for (const c of counters.slice(TOKENIZE_LIMIT)) c.node.textContent = t("editor.tokensUnknown");
      total.textContent = t("editor.total", { n: sum }) + suffix;
      total.dataset.ready = "true";
    } catch (err) {
      if (mine === generation) total.textContent = err.message;
    }
  }

  function scheduleCount() {
    clearTimeout(timer);
    timer = setTimeout(countTokens, TOKENIZE_DELAY_MS);
  }

  function changes() {
    const out = {};
    for (const [field] of FIELDS) {
      const now = inputs[field]();
      if (JSON.stringify(now) !== JSON.stringify(original[field])) out[field] = now;
    }
    return out;
  }

  async function save(event) {
    event.preventDefault();
    const body = changes();
    if (!inputs.name().trim()) {
      toast(t("editor.needName"), "error");
      return;
    }
    try {
      if (isNew) {
        const made = await api("/api/characters", { method: "POST", body });
        toast(t("editor.created", { name: made.name }));
        location.hash = `#/characters/${made.id}`;
      } else {
        const saved = Object.keys(body).length
          ? await api(`/api/characters/${id}`, { method: "PATCH", body }) : view;
        toast(t("editor.saved", { name: saved.name }));
        Object.assign(original, Object.fromEntries(Object.keys(body).map((k) => [k, inputs[k]()])));
        heading.textContent = t("editor.edit", { name: asText(saved.name) });
        app.refreshChats();
      }
    } catch (err) {
      toast(err.message, "error");
    }
  }

  form.append(el("div", { class: "form-buttons" },
    el("button", { id: "save-character", class: "primary", type: "submit", text: t("common.save") }),
    el("button", { id: "cancel-character", type: "button", text: t("common.cancel"),
      onclick: () => { location.hash = "#/characters"; } })));
  form.addEventListener("submit", save);
  form.addEventListener("input", scheduleCount);

  const aside = el("aside", { class: "editor-aside" }, avatarNode(view?.avatar, asText(view?.name)), total);
  if (!isNew) {
    aside.append(el("div", { class: "editor-actions" },
      el("button", { class: "chat primary", type: "button", text: t("editor.chat"), onclick: () => startChat(app, view) }),
      exportMenu(id)));
  }
  app.main.append(el("section", { class: "page character-editor" }, heading,
    el("div", { class: "editor-layout" }, aside, form)));
  clear(total);
  await countTokens();
}
