// The personas page: who the user plays as — list, create, edit, avatar, default, lorebook, character locks, delete.
import { ApiError, api } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: {
    "personas.title": "Personas",
    "personas.new": "New persona",
    "personas.newName": "Name of the new persona",
    "personas.create": "Create",
    "personas.empty": "No personas yet. A persona is who you are in a chat ({{user}}).",
    "personas.default": "Default",
    "personas.makeDefault": "Use by default",
    "personas.position": "Where the description goes",
    "personas.position.story_string": "In the story string",
    "personas.position.at_depth": "In the chat, at a depth",
    "personas.position.none": "Nowhere (only {{persona}})",
    "personas.depth": "Depth",
    "personas.role": "Role at depth",
    "personas.avatar": "Avatar",
    "personas.saved": "Saved {name}",
    "personas.created": "Created {name}",
    "personas.deleted": "Deleted {name}",
    "personas.confirmDelete": "Delete the persona {name}?",
    "personas.avatarSaved": "Avatar updated",
    "personas.pick": "Pick a persona to edit it.",
    "personas.estimated": "(estimated)",
    "personas.lorebook": "Lorebook",
    "personas.lorebookNone": "none",
    "personas.locks": "Locked to characters",
    "personas.locksEmpty": "No character is locked to this persona.",
    "personas.locksHint": "New chats with these characters always start as this persona. A character can be locked to one persona only: locking it here moves it from another persona.",
    "personas.lockCharacter": "Character to lock",
    "personas.lock": "Lock",
    "personas.unlock": "Remove",
    "personas.lockedElsewhere": "{name} (now locked to {persona})",
    "personas.noCharacters": "No other characters to lock.",
    "personas.locked": "{name} now starts chats as {persona}",
    "personas.unlocked": "{name} is no longer locked to {persona}",
  },
  ja: {
    "personas.title": "ペルソナ",
    "personas.new": "新しいペルソナ",
    "personas.newName": "新しいペルソナの名前",
    "personas.create": "作成",
    "personas.empty": "ペルソナがありません。ペルソナはチャットでのあなた（{{user}}）です。",
    "personas.default": "既定",
    "personas.makeDefault": "既定として使う",
    "personas.position": "説明の挿入位置",
    "personas.position.story_string": "ストーリー文字列の中",
    "personas.position.at_depth": "チャット内の指定の深さ",
    "personas.position.none": "挿入しない（{{persona}} のみ）",
    "personas.depth": "深さ",
    "personas.role": "深さでのロール",
    "personas.avatar": "アバター",
    "personas.saved": "{name} を保存しました",
    "personas.created": "{name} を作成しました",
    "personas.deleted": "{name} を削除しました",
    "personas.confirmDelete": "ペルソナ {name} を削除しますか？",
    "personas.avatarSaved": "アバターを更新しました",
    "personas.pick": "編集するペルソナを選んでください。",
    "personas.estimated": "（推定）",
    "personas.lorebook": "ロアブック",
    "personas.lorebookNone": "なし",
    "personas.locks": "固定されたキャラクター",
    "personas.locksEmpty": "このペルソナに固定されたキャラクターはありません。",
    "personas.locksHint": "これらのキャラクターとの新しいチャットは常にこのペルソナで始まります。キャラクターを固定できるペルソナは一つだけなので、ここで固定すると他のペルソナからは外れます。",
    "personas.lockCharacter": "固定するキャラクター",
    "personas.lock": "固定",
    "personas.unlock": "外す",
    "personas.lockedElsewhere": "{name}（現在は {persona} に固定）",
    "personas.noCharacters": "固定できる他のキャラクターがありません。",
    "personas.locked": "{name} のチャットは {persona} で始まります",
    "personas.unlocked": "{name} は {persona} に固定されなくなりました",
  },
});

const POSITIONS = ["story_string", "at_depth", "none"];
const ROLES = ["system", "user", "assistant"];
const TOKENIZE_DELAY_MS = 350;

// The avatar route takes PUT, which api.js's upload() (POST) does not do.
async function putAvatar(personaId, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const res = await fetch(`/api/personas/${personaId}/avatar`, { method: "PUT", body: form });
  if (res.ok) return res.json();
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    message = body?.error?.message || body?.detail?.msg || message;
  } catch (_) { /* not JSON */ }
  throw new ApiError(res.status, message);
}

function avatarOf(persona) {
  if (!persona.avatar) return el("div", { class: "avatar-placeholder" }, Array.from(String(persona.name || "?"))[0] || "?");
  return el("img", { class: "avatar", src: `/api/assets/${encodeURIComponent(persona.avatar)}`, alt: String(persona.name ?? "") });
}

export async function show(app, selected) {
  loadCss("personas");
  const state = { personas: [], lorebooks: [], characters: [], selected: selected ? Number(selected) : null };
  const list = el("div", { class: "persona-list", id: "persona-list" });
  const editor = el("div", { class: "persona-editor", id: "persona-editor" });
  const newName = el("input", { id: "new-persona-name", type: "text", placeholder: t("personas.newName"),
    "aria-label": t("personas.newName"), maxlength: 200 });
  const createForm = el("form", { class: "persona-create", id: "persona-create" }, newName,
    el("button", { class: "primary", type: "submit", id: "create-persona", text: t("personas.create") }));
  app.main.append(el("section", { class: "page personas" }, el("h2", { text: t("personas.title") }),
    createForm, el("div", { class: "personas-layout" }, list, editor)));

  async function load() {
    [state.personas, state.lorebooks, state.characters] = await Promise.all([
      api("/api/personas"), api("/api/lorebooks"), api("/api/characters")]);
    if (!state.personas.some((p) => p.id === state.selected)) state.selected = state.personas[0]?.id ?? null;
    renderList();
    renderEditor();
  }

  function renderList() {
    clear(list);
    if (!state.personas.length) list.append(el("p", { class: "empty", text: t("personas.empty") }));
    for (const p of state.personas) {
      list.append(el("button", {
        type: "button", class: `persona-item${p.id === state.selected ? " selected" : ""}${p.is_default ? " is-default" : ""}`,
        dataset: { id: p.id }, onclick: () => { state.selected = p.id; renderList(); renderEditor(); },
      }, avatarOf(p), el("span", { class: "persona-name", text: String(p.name ?? "") }),
      p.is_default ? el("span", { class: "tag default-badge", text: t("personas.default") }) : null));
    }
  }

  function renderEditor() {
    clear(editor);
    const p = state.personas.find((x) => x.id === state.selected);
    if (!p) {
      if (state.personas.length) editor.append(el("p", { class: "empty", text: t("personas.pick") }));
      return;
    }
    const name = el("input", { id: "persona-name", type: "text", maxlength: 200 });
    name.value = String(p.name ?? "");
    const description = el("textarea", { id: "persona-description", rows: 8 });
    description.value = String(p.description ?? "");
    const count = el("span", { class: "token-count", id: "persona-tokens" });
    const position = el("select", { id: "persona-position" },
      ...POSITIONS.map((v) => el("option", { value: v, text: t(`personas.position.${v}`) })));
    position.value = p.position || "story_string";
    const depth = el("input", { id: "persona-depth", type: "number", min: 0, max: 1000, step: 1 });
    depth.value = String(p.depth ?? 2);
    const role = el("select", { id: "persona-role" }, ...ROLES.map((v) => el("option", { value: v, text: v })));
    role.value = p.role || "system";
    const lorebook = el("select", { id: "persona-lorebook" },
      el("option", { value: "", text: t("personas.lorebookNone") }),
      ...state.lorebooks.map((b) => el("option", { value: b.id, text: String(b.name ?? "") })));
    lorebook.value = p.lorebook_id == null ? "" : String(p.lorebook_id);
    const isDefault = el("input", { id: "persona-default", type: "checkbox" });
    isDefault.checked = Boolean(p.is_default);
    const avatarFile = el("input", { id: "persona-avatar-file", type: "file", accept: "image/png,image/jpeg,image/webp,image/gif" });
    const depthRow = el("div", { class: "persona-depth-row" },
      el("label", {}, el("span", { text: t("personas.depth") }), depth),
      el("label", {}, el("span", { text: t("personas.role") }), role));
    const syncDepth = () => { depthRow.hidden = position.value !== "at_depth"; };
    position.addEventListener("change", syncDepth);
    syncDepth();

    let timer = null;
    let generation = 0;
    const countTokens = async () => {
      const mine = ++generation;
      try {
        const answer = await api("/api/tokenize", { method: "POST", body: { texts: [description.value] } });
        if (mine !== generation) return;
        count.textContent = t("common.tokens", { n: Number(answer.counts?.[0]) || 0 }) +
          (answer.estimated ? ` ${t("personas.estimated")}` : "");
      } catch (err) {
        if (mine === generation) count.textContent = err.message;
      }
    };
    description.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(countTokens, TOKENIZE_DELAY_MS); });
    countTokens();

    avatarFile.addEventListener("change", async () => {
      const file = avatarFile.files[0];
      if (!file) return;
      try {
        await putAvatar(p.id, file);
        toast(t("personas.avatarSaved"));
        await load();
      } catch (err) {
        toast(err.message, "error");
      }
    });

    const form = el("form", { class: "form persona-form", id: "persona-form",
      dataset: { id: p.id, lorebookId: p.lorebook_id ?? "" } },
      el("div", { class: "persona-avatar" }, avatarOf(p),
        el("label", {}, el("span", { text: t("personas.avatar") }), avatarFile)),
      el("label", {}, el("span", { text: t("common.name") }), name),
      el("label", {}, el("span", { text: t("common.description") }), description, count),
      el("label", {}, el("span", { text: t("personas.position") }), position),
      depthRow,
      el("label", {}, el("span", { text: t("personas.lorebook") }), lorebook),
      el("label", { class: "checkbox" }, isDefault, el("span", { text: t("personas.makeDefault") })),
      el("div", { class: "form-buttons" },
        el("button", { id: "save-persona", class: "primary", type: "submit", text: t("common.save") }),
        el("button", { id: "delete-persona", class: "danger", type: "button", text: t("common.delete"), onclick: remove })));

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: name.value, description: description.value, position: position.value,
        role: role.value, is_default: isDefault.checked,
        lorebook_id: lorebook.value === "" ? null : Number(lorebook.value) };
      const n = Number(depth.value);
      if (Number.isInteger(n)) body.depth = n;
      try {
        const saved = await api(`/api/personas/${p.id}`, { method: "PATCH", body });
        toast(t("personas.saved", { name: saved.name }));
        await load();
      } catch (err) {
        toast(err.message, "error");
      }
    });

    async function remove() {
      if (!confirm(t("personas.confirmDelete", { name: p.name }))) return;
      try {
        await api(`/api/personas/${p.id}`, { method: "DELETE" });
        toast(t("personas.deleted", { name: p.name }));
        state.selected = null;
        await load();
      } catch (err) {
        toast(err.message, "error");
      }
    }

    editor.append(form, locksBox(p));
  }

  // Locks are saved at once (not with the form): PUT /api/characters/{id}/persona.
  function locksBox(p) {
    const nameOf = new Map(state.characters.map((c) => [c.id, String(c.name ?? "")]));
    const lockedTo = new Map();
    for (const other of state.personas) {
      for (const cid of other.locked_character_ids || []) lockedTo.set(cid, other);
    }
    const mine = p.locked_character_ids || [];
    const list = el("ul", { class: "persona-lock-list" });
    if (!mine.length) list.append(el("li", { class: "empty", text: t("personas.locksEmpty") }));
    for (const cid of mine) {
      const name = nameOf.get(cid) ?? `#${cid}`;
      list.append(el("li", { class: "persona-lock-item", dataset: { characterId: cid } },
        el("span", { class: "persona-lock-name", text: name }),
        el("button", { type: "button", class: "persona-unlock", text: t("personas.unlock"),
          onclick: () => setLock(cid, null, t("personas.unlocked", { name, persona: p.name })) })));
    }
    const others = state.characters.filter((c) => !mine.includes(c.id));
    const picker = el("select", { id: "persona-lock-character", "aria-label": t("personas.lockCharacter") },
      ...others.map((c) => {
        const owner = lockedTo.get(c.id);
        const label = owner ? t("personas.lockedElsewhere", { name: c.name, persona: owner.name }) : String(c.name ?? "");
        return el("option", { value: c.id, text: label });
      }));
    const lockBtn = el("button", { id: "persona-lock", type: "button", text: t("personas.lock"),
      onclick: () => {
        const cid = Number(picker.value);
        if (!cid) return;
        setLock(cid, p.id, t("personas.locked", { name: nameOf.get(cid) ?? `#${cid}`, persona: p.name }));
      } });
    return el("fieldset", { class: "persona-locks", id: "persona-locks", dataset: { id: p.id } },
      el("legend", { text: t("personas.locks") }),
      el("p", { class: "hint", text: t("personas.locksHint") }),
      list,
      others.length ? el("div", { class: "persona-lock-add" }, picker, lockBtn)
        : el("p", { class: "empty", text: t("personas.noCharacters") }));
  }

  async function setLock(characterId, personaId, done) {
    try {
      await api(`/api/characters/${characterId}/persona`, { method: "PUT", body: { persona_id: personaId } });
      toast(done);
      // Only the list and this box are redrawn, so unsaved edits in the form stay.
      [state.personas, state.characters] = await Promise.all([api("/api/personas"), api("/api/characters")]);
      const p = state.personas.find((x) => x.id === state.selected);
      const box = editor.querySelector("#persona-locks");
      renderList();
      if (p && box) box.replaceWith(locksBox(p));
      else renderEditor();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("/api/personas", { method: "POST", body: { name: newName.value } });
      newName.value = "";
      toast(t("personas.created", { name: made.name }));
      state.selected = made.id;
      await load();
    } catch (err) {
      toast(err.message, "error");
    }
  });

  await load();
}
