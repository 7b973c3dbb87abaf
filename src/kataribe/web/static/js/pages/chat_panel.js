// The chat's side panel: persona, Author's Note, sampler, branches, prompt inspector, VN mode.
import { api } from "../api.js";
import { clear, el, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: { "panel.presets": "Presets", "panel.apply": "Apply", "panel.lorebook": "Lorebook for this chat", "panel.link": "Link",
    "panel.linked": "Linked", "panel.editCharacter": "Character card…", "panel.editGroup": "Group…",
    "panel.advanced": "More samplers (DRY, XTC, Mirostat…)", "panel.breakers": "dry_sequence_breakers (JSON list)",
    "panel.banned": "Banned phrases (one per line; never written, any case)",
    "panel.badBreakers": "dry_sequence_breakers must be a JSON list of strings, e.g. [\"\\n\", \":\"]" },
  ja: { "panel.presets": "プリセット", "panel.apply": "適用", "panel.lorebook": "このチャットのロアブック", "panel.link": "追加",
    "panel.linked": "追加しました", "panel.editCharacter": "キャラクターカード…", "panel.editGroup": "グループ…",
    "panel.advanced": "その他のサンプラー（DRY・XTC・Mirostat など）", "panel.breakers": "dry_sequence_breakers（JSON のリスト）",
    "panel.banned": "禁止フレーズ（1 行に 1 つ。大文字小文字を区別せず、出力しません）",
    "panel.badBreakers": "dry_sequence_breakers は文字列の JSON リストで指定してください（例: [\"\\n\", \":\"]）" },
});

const SAMPLER = [["temperature", 0.8, 0.05], ["top_p", 0.95, 0.01], ["top_k", 40, 1], ["min_p", 0.05, 0.01],
  ["repeat_penalty", 1.0, 0.01], ["seed", "", 1]];
// Behind "More samplers": the rest, with llama.cpp's defaults (which leave each sampler off).
const ADVANCED = [["typical_p", 1.0, 0.01], ["repeat_last_n", 64, 1], ["presence_penalty", 0, 0.05],
  ["frequency_penalty", 0, 0.05], ["dry_multiplier", 0, 0.05], ["dry_base", 1.75, 0.05], ["dry_allowed_length", 2, 1],
  ["dry_penalty_last_n", -1, 1], ["xtc_probability", 0, 0.05], ["xtc_threshold", 0.1, 0.01], ["top_n_sigma", -1, 0.1],
  ["dynatemp_range", 0, 0.05], ["dynatemp_exponent", 1, 0.1], ["mirostat", 0, 1], ["mirostat_tau", 5, 0.1],
  ["mirostat_eta", 0.1, 0.01]];
const DRY_BREAKERS = ["\n", ":", "\"", "*"];

export async function showSidePanel(app, state, { reload, setVn }) {
  const panel = app.panel;
  panel.hidden = false;
  clear(panel);
  const chat = state.chat;
  const settings = chat.settings || {};
  const sampler = settings.sampler || {};

  const personas = await api("/api/personas");
  const personaSelect = el("select", { id: "persona-select" },
    el("option", { value: "", text: t("panel.none") }),
    ...personas.map((p) => el("option", { value: p.id, text: p.name, selected: p.id === chat.persona_id })));

  const note = el("textarea", { id: "author-note", rows: 3 });
  note.value = chat.author_note.text;
  const depth = el("input", { id: "author-note-depth", type: "number", min: 0, max: 1000, value: chat.author_note.depth });
  const maxTokens = el("input", { id: "max-tokens", type: "number", min: 1, max: 8192, value: settings.max_tokens ?? 300 });
  const numberField = ([name, fallback, step]) => [name,
    el("input", { id: `sampler-${name}`, type: "number", step, value: sampler[name] ?? fallback })];
  const fields = SAMPLER.map(numberField);
  const advanced = ADVANCED.map(numberField);
  const breakers = el("input", { id: "sampler-dry_sequence_breakers", type: "text",
    value: JSON.stringify(sampler.dry_sequence_breakers ?? DRY_BREAKERS) });
  const banned = el("textarea", { id: "sampler-banned_strings", rows: 3 });
  banned.value = (sampler.banned_strings ?? []).join("\n");

  const save = el("button", { id: "save-chat-settings", class: "primary", type: "button", text: t("panel.save"), onclick: async () => {
    const samplerOut = {};
    for (const [name, input] of [...fields, ...advanced]) if (input.value !== "") samplerOut[name] = Number(input.value);
    try {
      const list = JSON.parse(breakers.value);
      if (!Array.isArray(list) || !list.every((b) => typeof b === "string")) throw new Error();
      samplerOut.dry_sequence_breakers = list;
      samplerOut.banned_strings = banned.value.split("\n").map((line) => line.trim()).filter(Boolean);
    } catch (_) {
      toast(t("panel.badBreakers"), "error");
      return;
    }
    try {
      await api(`/api/chats/${chat.id}`, { method: "PATCH", body: {
        persona_id: personaSelect.value ? Number(personaSelect.value) : null,
        author_note: { text: note.value, depth: Number(depth.value) },
        settings: { sampler: samplerOut, max_tokens: Number(maxTokens.value) },
      } });
      toast(t("panel.save"));
      await reload();
    } catch (err) { toast(err.message, "error"); }
  } });

  const presets = await api("/api/presets").catch(() => []);
  const presetSelect = el("select", { id: "preset-select" }, el("option", { value: "", text: t("panel.none") }),
    ...presets.map((p) => el("option", { value: p.id, text: `${p.kind}: ${p.name}` })));
  const applyPreset = el("button", { id: "apply-preset", type: "button", text: t("panel.apply"), onclick: async () => {
    if (!presetSelect.value) return;
    try {
      await api(`/api/presets/${presetSelect.value}/apply`, { method: "POST", body: { chat_id: chat.id } });
      await reload();
    } catch (err) { toast(err.message, "error"); }
  } });

  const books = await api("/api/lorebooks").catch(() => []);
  const bookSelect = el("select", { id: "chat-lorebook" }, el("option", { value: "", text: t("panel.none") }),
    ...books.map((b) => el("option", { value: b.id, text: b.name })));
  const linkBook = el("button", { id: "link-lorebook", type: "button", text: t("panel.link"), onclick: async () => {
    if (!bookSelect.value) return;
    try {
      await api(`/api/lorebooks/${bookSelect.value}/links`, { method: "POST", body: { chat_id: chat.id } });
      toast(t("panel.linked"));
    } catch (err) { toast(err.message, "error"); }
  } });

  const enterSends = el("input", { id: "enter-sends", type: "checkbox",
    checked: localStorage.getItem("kataribe.enterSends") !== "false",
    onchange: (event) => localStorage.setItem("kataribe.enterSends", String(event.target.checked)) });

  const tree = await api(`/api/chats/${chat.id}/tree`);
  const branches = el("ul", { class: "branches", id: "branches" }, ...tree.leaves.map((leaf) =>
    el("li", {}, el("button", { type: "button", class: leaf.id === tree.head_message_id ? "current" : "",
      text: `${leaf.name || leaf.role}: ${leaf.content.slice(0, 40)}`, onclick: async () => {
        await api(`/api/chats/${chat.id}/branch`, { method: "POST", body: { message_id: leaf.id } });
        await reload();
      } }))));

  const inspector = el("pre", { class: "prompt-inspector", id: "prompt-inspector", hidden: true });
  const inspect = el("button", { id: "inspect-prompt", type: "button", text: t("chat.prompt"), onclick: async () => {
    const dry = await api(`/api/chats/${chat.id}/prompt`);
    const lines = dry.sections.map((s) => `${s.section}: ${s.tokens}`);
    lines.push(`total: ${dry.total_tokens} / ${dry.budget_tokens}`);
    for (const l of dry.lore) lines.push(`lore ${l.book}/${l.uid} → ${l.placed} (${l.reason})`);
    for (const s of dry.lore_skipped) lines.push(`lore ${s.book}/${s.uid} skipped (${s.reason}): ${s.detail}`);
    lines.push("", ...dry.messages.map((m) => `[${m.role}] ${m.content}`));
    inspector.textContent = lines.join("\n");
    inspector.hidden = false;
  } });

  const vnToggle = el("button", { id: "vn-toggle", type: "button", text: t("chat.vn"), onclick: async () => {
    const { toggleVn } = await import("./vn.js");
    setVn(await toggleVn(app, state));
  } });

  const who = chat.character_id
    ? el("a", { id: "panel-character", href: `#/characters/${chat.character_id}`, text: t("panel.editCharacter") })
    : el("a", { id: "panel-character", href: `#/groups/${chat.group_id}`, text: t("panel.editGroup") });
  panel.append(
    who,
    el("h3", { text: t("panel.persona") }), personaSelect,
    el("h3", { text: t("panel.authorNote") }), note, el("label", {}, t("panel.depth"), depth),
    el("h3", { text: t("panel.sampler") }),
    el("label", {}, "max_tokens", maxTokens),
    ...fields.map(([name, input]) => el("label", {}, name, input)),
    el("details", { id: "sampler-advanced", class: "sampler-advanced" }, el("summary", { text: t("panel.advanced") }),
      ...advanced.map(([name, input]) => el("label", {}, name, input)),
      el("label", { class: "wide" }, t("panel.breakers"), breakers),
      el("label", { class: "wide" }, t("panel.banned"), banned)),
    save,
    el("h3", { text: t("panel.lorebook") }), el("div", { class: "panel-buttons" }, bookSelect, linkBook),
    el("label", {}, t("chat.enterSends"), enterSends),
    el("h3", { text: t("panel.presets") }), el("div", { class: "panel-buttons" }, presetSelect, applyPreset),
    el("h3", { text: t("chat.branches") }), branches,
    el("div", { class: "panel-buttons" }, inspect, vnToggle), inspector);
}
