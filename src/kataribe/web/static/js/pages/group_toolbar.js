// The group chat toolbar above the messages: next turn, force-talk per member, auto-mode on/off.
import { api } from "../api.js";
import { el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: {
    "gt.next": "Next turn", "gt.talk": "Talk: {name}", "gt.talkTitle": "Make {name} speak now",
    "gt.autoOn": "Auto-mode: on", "gt.autoOff": "Auto-mode: off", "gt.members": "Members:", "gt.unknown": "#{id}",
  },
  ja: {
    "gt.next": "次のターン", "gt.talk": "{name} が話す", "gt.talkTitle": "{name} に今すぐ話させる",
    "gt.autoOn": "オートモード: オン", "gt.autoOff": "オートモード: オフ", "gt.members": "メンバー:", "gt.unknown": "#{id}",
  },
});

const AUTO_POLL_MS = 2000;

// chat.js calls this after every (re)load of a group chat: the old toolbar is replaced, and what
// must survive a reload (members, auto-mode and its poll timer) lives on state.groupToolbar.
export async function mountGroupToolbar(pane, state, { generate, reload }) {
  loadCss("groups");
  const chatId = state.chat.id;
  const kept = (state.groupToolbar ??= { members: null, auto: Boolean(state.chat.auto_mode), timer: null });
  const bar = el("div", { class: "group-toolbar", id: "group-toolbar", role: "toolbar" });
  const old = pane.querySelector(".group-toolbar");
  if (old) old.replaceWith(bar);
  else pane.prepend(bar);

  if (!kept.members) {
    try {
      const [group, characters] = await Promise.all([api(`/api/groups/${state.chat.group_id}`), api("/api/characters")]);
      const names = new Map(characters.map((c) => [c.id, c.name]));
      kept.members = group.members.map((m) => ({ ...m, name: names.get(m.character_id) ?? t("gt.unknown", { id: m.character_id }) }));
    } catch (err) {
      toast(err.message, "error");
      kept.members = [];
    }
  }
  if (!bar.isConnected) return; // a newer load replaced this toolbar while the members were fetched

  const buttons = [];
  const turn = async (body) => {
    if (state.busy) return;
    for (const b of buttons) b.disabled = true;
    try {
      await generate(`/api/chats/${chatId}/group/next`, body);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    await reload();
  };

  const next = el("button", { class: "primary group-next", id: "group-next", type: "button", text: t("gt.next"), onclick: () => turn({}) });
  buttons.push(next);
  const talk = el("span", { class: "group-talk" }, el("span", { class: "token-count", text: t("gt.members") }),
    ...kept.members.map((m) => {
      const b = el("button", { type: "button", class: `group-force${m.muted ? " muted" : ""}`, dataset: { characterId: m.character_id },
        title: t("gt.talkTitle", { name: m.name }), text: t("gt.talk", { name: m.name }),
        onclick: () => turn({ character_id: m.character_id }) });
      buttons.push(b);
      return b;
    }));
  const auto = el("button", { type: "button", id: "group-auto", "aria-pressed": String(kept.auto) });
  const paintAuto = () => {
    auto.textContent = kept.auto ? t("gt.autoOn") : t("gt.autoOff");
    auto.className = `group-auto${kept.auto ? " on" : ""}`;
    auto.setAttribute("aria-pressed", String(kept.auto));
  };
  auto.addEventListener("click", async () => {
    try {
      const res = await api(`/api/chats/${chatId}/group/auto`, { method: "PUT", body: { enabled: !kept.auto } });
      kept.auto = Boolean(res.enabled);
    } catch (err) { toast(err.message, "error"); }
    paintAuto();
    watchAuto(pane, state, kept, reload);
  });
  paintAuto();
  bar.append(next, talk, auto);
  watchAuto(pane, state, kept, reload);
}

// Auto-mode replies are written by the server in the background: poll the chat's head and reload when it moves.
function watchAuto(pane, state, kept, reload) {
  if (kept.timer) { clearInterval(kept.timer); kept.timer = null; }
  if (!kept.auto) return;
  kept.timer = setInterval(async () => {
    if (!pane.isConnected) { clearInterval(kept.timer); kept.timer = null; return; }
    if (state.busy) return;
    try {
      const chat = await api(`/api/chats/${state.chat.id}?limit=1`);
      if (chat.head_message_id !== state.chat.head_message_id) await reload();
    } catch (_) { /* the next poll tries again */ }
  }, AUTO_POLL_MS);
}
