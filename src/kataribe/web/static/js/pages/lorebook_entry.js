// One lorebook entry's form (every LoreEntry field, SillyTavern's options kept in `extensions`) and the
// optional-number/optional-boolean inputs the book settings share.
// Its strings are registered by lorebooks.js, which is the only page that imports this module.
import { api } from "../api.js";
import { clear, el } from "../dom.js";
import { t } from "../i18n.js";

export const POSITIONS = ["before_char", "after_char", "an_top", "an_bottom", "at_depth", "em_top", "em_bottom", "outlet"];
const LOGICS = [[0, "AND ANY"], [1, "NOT ALL"], [2, "NOT ANY"], [3, "AND ALL"]];
const ROLES = ["system", "user", "assistant"];

// Every editable LoreEntry field and how it is edited; extensions, source, name, priority pass through untouched.
const ENTRY_FIELDS = [
  ["comment", "text"], ["keys", "list"], ["secondary_keys", "list"], ["content", "textarea"],
  ["constant", "bool"], ["selective", "bool"], ["selective_logic", "logic"], ["use_regex", "bool"],
  ["order", "int"], ["position", "position"], ["depth", "int"], ["role", "role"],
  ["probability", "int"], ["use_probability", "bool"], ["disabled", "bool"],
  ["exclude_recursion", "bool"], ["prevent_recursion", "bool"], ["delay_until_recursion", "level"],
  ["scan_depth", "optint"], ["case_sensitive", "optbool"], ["match_whole_words", "optbool"],
  ["group", "text"], ["group_override", "bool"], ["group_weight", "int"], ["use_group_scoring", "optbool"],
  ["sticky", "optint"], ["cooldown", "optint"], ["delay", "optint"],
];
// SillyTavern's entry options that live in `extensions`: written under SillyTavern's names; a
// character book's names (the alias) are read too, and dropped when the option is edited.
const EXT_ALIASES = {
  characterFilter: "character_filter", ignoreBudget: "ignore_budget",
  matchPersonaDescription: "match_persona_description", matchCharacterDescription: "match_character_description",
  matchCharacterPersonality: "match_character_personality", matchCharacterDepthPrompt: "match_character_depth_prompt",
  matchScenario: "match_scenario", matchCreatorNotes: "match_creator_notes",
};
const TRIGGERS = ["normal", "continue", "impersonate", "swipe", "regenerate", "quiet"];
const MATCHES = Object.keys(EXT_ALIASES).filter((name) => name.startsWith("match"));

export function entryLabel(entry) {
  return entry.comment || entry.name || entry.keys[0] || `#${entry.uid}`;
}

export function newEntry(uid) {
  return { uid, keys: [], secondary_keys: [], content: "", comment: "", constant: false, selective: true, selective_logic: 0,
    order: 100, position: "before_char", depth: 4, role: "system", probability: 100, use_probability: true, disabled: false,
    exclude_recursion: false, prevent_recursion: false, delay_until_recursion: false, scan_depth: null, case_sensitive: null,
    match_whole_words: null, group: "", group_override: false, group_weight: 100, use_group_scoring: null, sticky: null,
    cooldown: null, delay: null, use_regex: false, name: null, priority: null, extensions: {}, source: null };
}

// The form writes each change straight into `entry` (a field that does not parse is left as it was).
export function entryForm(entry, onChange) {
  const form = el("div", { class: "form lore-form", dataset: { uid: entry.uid } });
  const notes = { keys: keyNotes(entry, "keys"), secondary_keys: keyNotes(entry, "secondary_keys") };
  const recheck = { keys: [notes.keys], secondary_keys: [notes.secondary_keys], use_regex: Object.values(notes), case_sensitive: Object.values(notes) };
  for (const [name, kind] of ENTRY_FIELDS) {
    const label = t(`lore.f.${name}`);
    const input = fieldInput(name, kind, entry[name]);
    input.addEventListener("input", () => {
      try {
        entry[name] = readField(kind, input, entry[name], label);
        input.classList.remove("invalid");
        onChange();
        for (const note of recheck[name] || []) note.refresh();
      } catch (_) { input.classList.add("invalid"); }
    });
    if (kind === "bool") form.append(el("label", { class: "check" }, input, label));
    else form.append(el("label", { class: kind === "textarea" || kind === "list" ? "wide" : "" }, kind === "list" ? `${label} (${t("lore.onePerLine")})` : label, input));
    if (notes[name]) form.append(notes[name].box);
  }
  form.append(extrasForm(entry, onChange));
  for (const note of Object.values(notes)) note.refresh(0);
  return form;
}

// What the server will do with a list of keys: regexes it refuses (and why) and those that run with a
// time limit. Asked again a moment after each edit; an answer to an older edit is dropped.
function keyNotes(entry, name) {
  const box = el("ul", { class: "lore-key-notes wide", id: `lore-entry-${name.replaceAll("_", "-")}-notes`, "aria-live": "polite" });
  let timer = null;
  let asked = 0;
  const show = (checks) => clear(box).append(...checks.filter((c) => c.refused || c.time_limited).map((c) => el("li",
    { class: c.refused ? "refused" : "limited", dataset: { key: c.key } },
    c.refused ? t("lore.keyRefused", { key: c.key, reason: c.refused }) : t("lore.keyTimeLimited", { key: c.key }))));
  const refresh = (delay = 300) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const ticket = ++asked;
      const keys = entry[name] || [];
      if (!keys.some((k) => /[\\^$.*+?()[\]{}|]/.test(k))) { show([]); return; } // plain words always run
      try {
        const body = { keys, use_regex: Boolean(entry.use_regex), case_sensitive: entry.case_sensitive === true };
        const result = await api("/api/lorebooks/check-keys", { method: "POST", body });
        if (ticket === asked) show(result.keys);
      } catch (_) { /* the notes are advice: the form works without them */ }
    }, delay);
  };
  return { box, refresh };
}

function readExt(entry, name) {
  const ext = entry.extensions || {};
  if (name in ext) return ext[name];
  const alias = EXT_ALIASES[name];
  return alias && alias in ext ? ext[alias] : undefined;
}

function writeExt(entry, name, value) {
  const ext = { ...(entry.extensions || {}) };
  if (EXT_ALIASES[name]) delete ext[EXT_ALIASES[name]];
  ext[name] = value;
  entry.extensions = ext;
}

function checkbox(id, checked) {
  const input = el("input", { type: "checkbox", id });
  input.checked = checked;
  return input;
}

const asObject = (value) => (value && typeof value === "object" && !Array.isArray(value) ? value : {});
const asList = (value) => (Array.isArray(value) ? value.map(String) : []);
const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

// Character filter, generation triggers, ignore budget and match sources.
function extrasForm(entry, onChange) {
  const filter = asObject(readExt(entry, "characterFilter"));
  const names = el("textarea", { id: "lore-entry-filter-names", rows: 2 });
  names.value = asList(filter.names).join("\n");
  const tags = el("textarea", { id: "lore-entry-filter-tags", rows: 2 });
  tags.value = asList(filter.tags).join("\n");
  const exclude = checkbox("lore-entry-filter-exclude", (filter.isExclude ?? filter.is_exclude) === true);
  for (const input of [names, tags, exclude]) input.addEventListener("input", () => {
    const { is_exclude: _old, ...kept } = asObject(readExt(entry, "characterFilter"));
    writeExt(entry, "characterFilter", { ...kept, isExclude: exclude.checked, names: lines(names.value), tags: lines(tags.value) });
    onChange();
  });

  const triggers = TRIGGERS.map((name) => checkbox(`lore-entry-trigger-${name}`, asList(readExt(entry, "triggers")).includes(name)));
  for (const box of triggers) box.addEventListener("input", () => {
    const unknown = asList(readExt(entry, "triggers")).filter((name) => !TRIGGERS.includes(name));
    writeExt(entry, "triggers", [...TRIGGERS.filter((_, i) => triggers[i].checked), ...unknown]);
    onChange();
  });

  const flag = (name, id) => {
    const box = checkbox(id, readExt(entry, name) === true);
    box.addEventListener("input", () => { writeExt(entry, name, box.checked); onChange(); });
    return box;
  };
  const oneLine = `(${t("lore.onePerLine")})`;
  return el("fieldset", { class: "lore-extras wide", id: "lore-entry-extras" },
    el("legend", { text: t("lore.x.title") }),
    el("label", {}, `${t("lore.x.filterNames")} ${oneLine}`, names),
    el("label", {}, `${t("lore.x.filterTags")} ${oneLine}`, tags),
    el("label", { class: "check" }, exclude, t("lore.x.filterExclude")),
    el("label", { class: "check" }, flag("ignoreBudget", "lore-entry-ignore-budget"), t("lore.x.ignoreBudget")),
    el("div", { class: "lore-extras-group", role: "group", "aria-label": t("lore.x.triggers") },
      el("span", { class: "lore-extras-title", text: t("lore.x.triggers") }),
      ...TRIGGERS.map((name, i) => el("label", { class: "check" }, triggers[i], t(`lore.x.trigger.${name}`)))),
    el("div", { class: "lore-extras-group", role: "group", "aria-label": t("lore.x.matches") },
      el("span", { class: "lore-extras-title", text: t("lore.x.matches") }),
      ...MATCHES.map((name) => el("label", { class: "check" },
        flag(name, `lore-entry-${EXT_ALIASES[name].replaceAll("_", "-")}`), t(`lore.x.match.${name}`)))));
}

function fieldInput(name, kind, value) {
  const id = `lore-entry-${name.replaceAll("_", "-")}`;
  let input;
  if (kind === "bool") { input = el("input", { type: "checkbox", id }); input.checked = Boolean(value); return input; }
  if (kind === "optbool") return optBoolSelect(id, value);
  if (kind === "logic") input = el("select", { id }, ...LOGICS.map(([v, text]) => el("option", { value: v, text })));
  else if (kind === "position") input = el("select", { id }, ...POSITIONS.map((p) => el("option", { value: p, text: p })));
  else if (kind === "role") input = el("select", { id }, ...ROLES.map((r) => el("option", { value: r, text: r })));
  else if (kind === "textarea") input = el("textarea", { id, rows: 6 });
  else if (kind === "list") input = el("textarea", { id, rows: 2 });
  else if (kind === "text") input = el("input", { id });
  else input = el("input", { id, type: "number", step: 1 });
  if (kind === "list") input.value = value.join("\n");
  else if (kind === "level") input.value = value === true ? 1 : Number(value || 0);
  else input.value = value === null || value === undefined ? "" : String(value);
  return input;
}

function readField(kind, input, old, label) {
  if (kind === "bool") return input.checked;
  if (kind === "optbool") return readOptBool(input);
  if (kind === "list") return input.value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (kind === "logic") return Number(input.value);
  if (kind === "optint") return readOptInt(input, label);
  if (kind === "int") return readInt(input.value, label);
  if (kind === "level") {
    const level = readInt(input.value || "0", label);
    if (old === true && level === 1) return true; // keep SillyTavern's boolean form while unchanged
    return level === 0 ? false : level;
  }
  return input.value;
}

function readInt(text, label) {
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n)) throw new Error(t("lore.badInt", { field: label }));
  return n;
}

export function readOptInt(input, label) {
  return input.value.trim() === "" ? null : readInt(input.value, label);
}

export function optIntInput(id, value) {
  const input = el("input", { id, type: "number", step: 1, min: 0 });
  input.value = value === null || value === undefined ? "" : String(value);
  return input;
}

export function optBoolSelect(id, value) {
  const select = el("select", { id }, el("option", { value: "", text: t("lore.useGlobal") }),
    el("option", { value: "true", text: t("lore.yes") }), el("option", { value: "false", text: t("lore.no") }));
  select.value = value === true ? "true" : value === false ? "false" : "";
  return select;
}

export function readOptBool(select) {
  return select.value === "" ? null : select.value === "true";
}
