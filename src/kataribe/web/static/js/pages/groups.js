// Group chats (#/groups, #/groups/<id>): members, mute and talkativeness, turn strategy, and starting a chat.
import { api } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: {
    "groups.title": "Groups", "groups.new": "New group", "groups.none": "No groups yet.", "groups.name": "Name",
    "groups.members": "Members", "groups.add": "Add member", "groups.noCharacters": "Import or create characters first.",
    "groups.muted": "Muted", "groups.talkativeness": "Talkativeness", "groups.up": "Move up", "groups.down": "Move down",
    "groups.remove": "Remove", "groups.strategy": "Who speaks next", "groups.strategy.natural": "Natural (mentions, talkativeness)",
    "groups.strategy.list": "List (everyone in order)", "groups.strategy.manual": "Manual (only when asked)",
    "groups.strategy.pooled": "Pooled (one who has not spoken yet)", "groups.self": "Allow self-responses",
    "groups.mode": "Card handling", "groups.mode.swap": "Swap (only the speaker's card)", "groups.mode.join": "Join (all cards)",
    "groups.delay": "Auto-mode delay (seconds)", "groups.scenario": "Scenario override (empty: each card's own)",
    "groups.save": "Save", "groups.saved": "Saved.", "groups.delete": "Delete", "groups.confirmDelete": "Delete the group “{name}”?",
    "groups.start": "Start chat", "groups.needMembers": "Add at least one member.", "groups.memberCount": "{count} members",
    "groups.unknown": "(deleted character {id})",
  },
  ja: {
    "groups.title": "グループ", "groups.new": "新しいグループ", "groups.none": "グループはまだありません。", "groups.name": "名前",
    "groups.members": "メンバー", "groups.add": "メンバーを追加", "groups.noCharacters": "先にキャラクターを読み込むか作成してください。",
    "groups.muted": "ミュート", "groups.talkativeness": "発言頻度", "groups.up": "上へ", "groups.down": "下へ",
    "groups.remove": "外す", "groups.strategy": "次に話す人", "groups.strategy.natural": "自然（名前の呼びかけ・発言頻度）",
    "groups.strategy.list": "リスト（全員が順番に）", "groups.strategy.manual": "手動（指名したときだけ）",
    "groups.strategy.pooled": "プール（まだ話していない人から 1 人）", "groups.self": "自分への返答を許可",
    "groups.mode": "カードの扱い", "groups.mode.swap": "切り替え（話し手のカードのみ）", "groups.mode.join": "結合（全員のカード）",
    "groups.delay": "オートモードの間隔（秒）", "groups.scenario": "シナリオの上書き（空欄: 各カードのもの）",
    "groups.save": "保存", "groups.saved": "保存しました。", "groups.delete": "削除", "groups.confirmDelete": "グループ「{name}」を削除しますか？",
    "groups.start": "チャットを始める", "groups.needMembers": "メンバーを 1 人以上追加してください。", "groups.memberCount": "メンバー {count} 人",
    "groups.unknown": "（削除されたキャラクター {id}）",
  },
});

const STRATEGIES = ["natural", "list", "manual", "pooled"];

export async function show(app, groupId) {
  loadCss("groups");
  const [groups, characters] = await Promise.all([api("/api/groups"), api("/api/characters")]);
  const names = new Map(characters.map((c) => [c.id, c.name]));
  const nameOf = (id) => names.get(id) ?? t("groups.unknown", { id });
  const id = groupId ? Number(groupId) : null;
  const current = id === null ? null : await api(`/api/groups/${id}`);

  const list = el("ul", { class: "group-list", id: "group-list" },
    el("li", {}, el("a", { href: "#/groups", class: id === null ? "active" : "", text: `+ ${t("groups.new")}` })),
    ...groups.map((g) => el("li", { dataset: { groupId: g.id } },
      el("a", { href: `#/groups/${g.id}`, class: g.id === id ? "active" : "", text: g.name }),
      el("span", { class: "group-count", text: t("groups.memberCount", { count: g.members.length }) }))));
  if (!groups.length) list.append(el("li", { class: "empty", text: t("groups.none") }));

  app.main.append(el("section", { class: "page groups-page" },
    el("h2", { text: t("groups.title") }),
    el("div", { class: "groups-layout" }, list, groupForm(app, current, characters, nameOf))));
}

function groupForm(app, group, characters, nameOf) {
  const draft = {
    name: group?.name ?? "",
    members: (group?.members ?? []).map((m) => ({ character_id: m.character_id, muted: m.muted, talkativeness: m.talkativeness })),
  };
  const nameInput = el("input", { id: "group-name", maxlength: 200 });
  nameInput.value = draft.name;
  const strategy = el("select", { id: "group-strategy" },
    ...STRATEGIES.map((s) => el("option", { value: s, text: t(`groups.strategy.${s}`) })));
  strategy.value = group?.activation_strategy ?? "natural";
  const self = el("input", { type: "checkbox", id: "group-self" });
  self.checked = Boolean(group?.allow_self_responses);
  const mode = el("select", { id: "group-mode" }, ...["swap", "join"].map((m) => el("option", { value: m, text: t(`groups.mode.${m}`) })));
  mode.value = group?.generation_mode ?? "swap";
  const delay = el("input", { type: "number", id: "group-delay", min: 0, max: 3600, step: 1 });
  delay.value = String(group?.auto_mode_delay_s ?? 5);
  const scenario = el("textarea", { id: "group-scenario", rows: 3 });
  scenario.value = group?.scenario_override ?? "";

  const memberList = el("ul", { class: "group-members", id: "group-members" });
  const picker = el("select", { id: "group-add-select" });
  const addBtn = el("button", { id: "group-add", type: "button", text: t("groups.add"), onclick: () => {
    if (!picker.value) return;
    draft.members.push({ character_id: Number(picker.value), muted: false, talkativeness: 0.5 });
    renderMembers();
  } });

  function renderMembers() {
    clear(memberList);
    draft.members.forEach((m, i) => {
      const mute = el("input", { type: "checkbox", class: "member-mute" });
      mute.checked = m.muted;
      mute.addEventListener("change", () => { m.muted = mute.checked; row.classList.toggle("muted", m.muted); });
      const talk = el("input", { type: "range", class: "member-talk", min: 0, max: 1, step: 0.05 });
      talk.value = String(m.talkativeness);
      const talkValue = el("span", { class: "member-talk-value", text: m.talkativeness.toFixed(2) });
      talk.addEventListener("input", () => { m.talkativeness = Number(talk.value); talkValue.textContent = m.talkativeness.toFixed(2); });
      const move = (step) => {
        const j = i + step;
        if (j < 0 || j >= draft.members.length) return;
        [draft.members[i], draft.members[j]] = [draft.members[j], draft.members[i]];
        renderMembers();
      };
      const row = el("li", { class: `group-member${m.muted ? " muted" : ""}`, dataset: { characterId: m.character_id } },
        el("span", { class: "member-name", text: nameOf(m.character_id) }),
        el("label", { class: "member-mute-label" }, mute, t("groups.muted")),
        el("label", { class: "member-talk-label" }, t("groups.talkativeness"), talk, talkValue),
        el("span", { class: "member-buttons" },
          el("button", { type: "button", title: t("groups.up"), "aria-label": t("groups.up"), disabled: i === 0, onclick: () => move(-1) }, "↑"),
          el("button", { type: "button", title: t("groups.down"), "aria-label": t("groups.down"), disabled: i === draft.members.length - 1, onclick: () => move(1) }, "↓"),
          el("button", { type: "button", class: "danger member-remove", text: t("groups.remove"), onclick: () => {
            draft.members.splice(i, 1);
            renderMembers();
          } })));
      memberList.append(row);
    });
    const inGroup = new Set(draft.members.map((m) => m.character_id));
    clear(picker).append(...characters.filter((c) => !inGroup.has(c.id)).map((c) => el("option", { value: c.id, text: c.name })));
    addBtn.disabled = !picker.options.length;
  }

  function body() {
    const seconds = Number(delay.value);
    return {
      name: nameInput.value.trim(), members: draft.members, activation_strategy: strategy.value,
      allow_self_responses: self.checked, generation_mode: mode.value,
      auto_mode_delay_s: Number.isInteger(seconds) ? seconds : 5, scenario_override: scenario.value,
    };
  }

  async function save() {
    if (!draft.members.length) { toast(t("groups.needMembers"), "error"); return null; }
    try {
      const saved = group
        ? await api(`/api/groups/${group.id}`, { method: "PATCH", body: body() })
        : await api("/api/groups", { method: "POST", body: body() });
      toast(t("groups.saved"));
      return saved;
    } catch (err) {
      toast(err.message, "error");
      return null;
    }
  }

  const saveBtn = el("button", { id: "group-save", class: "primary", type: "button", text: t("groups.save"), onclick: async () => {
    const saved = await save();
    if (saved && !group) location.hash = `#/groups/${saved.id}`;
    else if (saved) group = saved;
  } });
  const startBtn = el("button", { id: "group-start", type: "button", text: t("groups.start"), onclick: async () => {
    const saved = await save();
    if (!saved) return;
    try {
      const chat = await api(`/api/groups/${saved.id}/chats`, { method: "POST" });
      await app.refreshChats();
      location.hash = `#/chat/${chat.id}`;
    } catch (err) { toast(err.message, "error"); }
  } });
  const deleteBtn = group && el("button", { id: "group-delete", class: "danger", type: "button", text: t("groups.delete"), onclick: async () => {
    if (!confirm(t("groups.confirmDelete", { name: group.name }))) return;
    try {
      await api(`/api/groups/${group.id}`, { method: "DELETE" });
      location.hash = "#/groups";
    } catch (err) { toast(err.message, "error"); }
  } });

  renderMembers();
  return el("div", { class: "form group-form", id: "group-form", dataset: { groupId: group?.id ?? "" } },
    el("label", {}, t("groups.name"), nameInput),
    el("fieldset", { class: "group-member-box" }, el("legend", { text: t("groups.members") }), memberList,
      characters.length ? el("div", { class: "group-add" }, picker, addBtn) : el("p", { class: "empty", text: t("groups.noCharacters") })),
    el("label", {}, t("groups.strategy"), strategy),
    el("label", { class: "check" }, self, t("groups.self")),
    el("label", {}, t("groups.mode"), mode),
    el("label", {}, t("groups.delay"), delay),
    el("label", {}, t("groups.scenario"), scenario),
    el("div", { class: "group-buttons" }, saveBtn, startBtn, deleteBtn));
}
