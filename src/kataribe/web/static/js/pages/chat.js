// The chat pane: streaming replies, stop, swipes, continue, impersonate, edit, hide, branch, copy.
import { api, renderMarkdown, stream } from "../api.js";
import { clear, el, setSanitizedHtml, toast } from "../dom.js";
import { t } from "../i18n.js";
import { showSidePanel } from "./chat_panel.js";

export async function show(app, chatId) {
  const id = Number(chatId);
  const state = { id, chat: null, messages: [], abort: null, busy: false, vn: null };
  const list = el("div", { class: "messages", id: "messages", "aria-live": "polite" });
  const input = el("textarea", { id: "composer", rows: 2, placeholder: t("chat.placeholder"), "aria-label": t("chat.send") });
  const sendBtn = el("button", { id: "send", class: "primary", type: "button", text: t("chat.send") });
  const stopBtn = el("button", { id: "stop", type: "button", text: t("chat.stop"), hidden: true });
  const impBtn = el("button", { id: "impersonate", type: "button", text: t("chat.impersonate") });
  const status = el("div", { class: "chat-status", id: "chat-status" });
  const pane = el("section", { class: "chat-pane" },
    list, status,
    el("div", { class: "composer" }, input, el("div", { class: "composer-buttons" }, sendBtn, stopBtn, impBtn)));
  app.main.append(pane);

  async function load() {
    state.chat = await api(`/api/chats/${id}?limit=200`);
    state.messages = state.chat.messages;
    await renderAll();
    showSidePanel(app, state, { reload: load, setVn });
    if (state.chat.group_id) {
      const { mountGroupToolbar } = await import("./group_toolbar.js");
      mountGroupToolbar(pane, state, { generate, reload: load });
    }
    if (state.vn) state.vn.update(state);
  }

  async function renderAll() {
    const html = await renderMarkdown(state.messages.map((m) => m.content));
    clear(list);
    state.messages.forEach((m, i) => list.append(messageNode(m, html[i], i === state.messages.length - 1)));
    list.scrollTop = list.scrollHeight;
  }

  function stats(meta) {
    const tm = meta?.timings;
    if (!tm) return "";
    const seconds = ((tm.prompt_ms || 0) + (tm.predicted_ms || 0)) / 1000;
    return t("chat.stats", { tps: (tm.predicted_per_second || 0).toFixed(1), prompt: tm.prompt_n + tm.cache_n,
      cached: tm.cache_n, seconds: seconds.toFixed(1) });
  }

  function messageNode(m, html, isLast) {
    const body = el("div", { class: "message-body" });
    setSanitizedHtml(body, html);
    const actions = el("div", { class: "message-actions" });
    const node = el("article", { class: `message role-${m.role}${m.hidden ? " hidden-msg" : ""}`, dataset: { id: m.id, role: m.role } },
      el("header", {}, el("span", { class: "speaker", text: m.name || m.role })), body, actions);
    if (m.role === "assistant") {
      const count = m.swipe_count || 1;
      actions.append(
        el("button", { class: "swipe-left", type: "button", title: "←", disabled: m.swipe_index <= 0 || state.busy,
          onclick: () => swipe(m, -1) }, "‹"),
        el("span", { class: "swipe-count", text: `${m.swipe_index + 1}/${count}` }),
        el("button", { class: "swipe-right", type: "button", title: "→", disabled: state.busy, onclick: () => swipe(m, +1) }, "›"));
      if (isLast) actions.append(el("button", { class: "continue", type: "button", text: t("chat.continue"), onclick: () => continueMsg(m) }));
    }
    actions.append(
      el("button", { class: "edit", type: "button", text: t("chat.edit"), onclick: () => edit(m, node) }),
      el("button", { class: "copy", type: "button", text: t("chat.copy"), onclick: async () => {
        await navigator.clipboard?.writeText(m.content).catch(() => {}); toast(t("chat.copied"));
      } }),
      el("button", { class: "hide", type: "button", text: m.hidden ? t("chat.unhide") : t("chat.hide"),
        onclick: async () => { await api(`/api/messages/${m.id}`, { method: "PATCH", body: { hidden: !m.hidden } }); await load(); } }),
      el("button", { class: "branch", type: "button", text: t("chat.branch"),
        onclick: async () => { await api(`/api/chats/${id}/branch`, { method: "POST", body: { message_id: m.id } }); await load(); } }),
      el("button", { class: "delete danger", type: "button", text: t("chat.delete"),
        onclick: async () => { await api(`/api/messages/${m.id}`, { method: "DELETE" }); await load(); app.refreshChats(); } }));
    const line = stats(m.meta);
    if (line) node.append(el("footer", { class: "message-stats", text: line }));
    return node;
  }

  function edit(m, node) {
    const area = el("textarea", { class: "edit-area", rows: 4 });
    area.value = m.content;
    const body = node.querySelector(".message-body");
    const save = el("button", { class: "primary save-edit", type: "button", text: t("chat.save"), onclick: async () => {
      await api(`/api/messages/${m.id}`, { method: "PATCH", body: { content: area.value } });
      await load();
    } });
    const cancel = el("button", { type: "button", text: t("chat.cancel"), onclick: () => load() });
    body.replaceWith(el("div", { class: "message-edit" }, area, el("div", {}, save, cancel)));
    area.focus();
  }

  function setBusy(busy) {
    state.busy = busy;
    sendBtn.hidden = busy;
    stopBtn.hidden = !busy;
    impBtn.disabled = busy;
  }

  // Stream one generation; a live bubble shows the text as it arrives (as text, not HTML).
  async function generate(path, body, { liveFor = null } = {}) {
    const controller = new AbortController();
    state.abort = controller;
    setBusy(true);
    let bubble = null;
    let text = liveFor ? liveFor.content : "";
    let result = null;
    try {
      await stream(path, body, (kind, data) => {
        if (kind === "user_message") {
          state.messages.push({ ...data, swipe_count: 1 });
          list.append(messageNode(data, el("p", { text: data.content }).outerHTML, false));
        } else if (kind === "token") {
          if (!bubble) {
            bubble = el("div", { class: "message-body streaming" });
            const host = liveFor ? list.querySelector(`[data-id="${liveFor.id}"] .message-body`) : null;
            if (host) host.replaceWith(bubble);
            else list.append(el("article", { class: "message role-assistant live", dataset: { role: "assistant" } },
              el("header", {}, el("span", { class: "speaker", text: "…" })), bubble));
          }
          text += data.text;
          bubble.textContent = text;
          list.scrollTop = list.scrollHeight;
        } else if (kind === "speaker") {
          bubble = null;
        } else if (kind === "message") {
          result = data;
          bubble = null;
          if (state.vn) state.vn.onReply(data);
        } else if (kind === "error") {
          toast(data.message, "error");
        }
      }, { signal: controller.signal });
    } catch (err) {
      if (err.name !== "AbortError") toast(err.message, "error");
    } finally {
      state.abort = null;
      setBusy(false);
    }
    return result;
  }

  async function send() {
    const text = input.value;
    if (!text.trim() || state.busy) return;
    input.value = "";
    if (state.chat.group_id) {
      // in a group the members answer by the group's strategy, one after another
      await api(`/api/chats/${id}/messages`, { method: "POST", body: { text, generate: false } });
      await load();
      await generate(`/api/chats/${id}/group/next`, {});
    } else {
      await generate(`/api/chats/${id}/messages`, { text });
    }
    await load();
    app.refreshChats();
  }

  async function swipe(m, step) {
    const next = m.swipe_index + step;
    if (next < 0 || state.busy) return;
    if (next < (m.swipe_count || 1)) {
      await api(`/api/messages/${m.id}`, { method: "PATCH", body: { swipe_index: next } });
    } else {
      await generate(`/api/messages/${m.id}/regenerate`, {}, { liveFor: { ...m, content: "" } });
    }
    await load();
  }

  async function continueMsg(m) {
    await generate(`/api/messages/${m.id}/continue`, {}, { liveFor: m });
    await load();
  }

  async function impersonate() {
    const reply = await generate(`/api/chats/${id}/impersonate`, {});
    list.querySelector(".message.live")?.remove();
    if (reply) input.value = reply.content;
    input.focus();
  }

  function setVn(vn) { state.vn = vn; }

  sendBtn.addEventListener("click", send);
  stopBtn.addEventListener("click", stop);
  impBtn.addEventListener("click", impersonate);

  async function stop() {
    await api(`/api/chats/${id}/stop`, { method: "POST" }).catch(() => {});
  }

  input.addEventListener("keydown", (event) => {
    // A Japanese IME uses Enter to confirm its composition: that Enter must never send.
    if (event.isComposing || event.keyCode === 229) return;
    const enterSends = localStorage.getItem("kataribe.enterSends") !== "false";
    if (event.key === "Enter" && !event.shiftKey && enterSends) {
      event.preventDefault();
      send();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !enterSends) {
      event.preventDefault();
      send();
    } else if (event.key === "ArrowUp" && !input.value) {
      const last = state.messages[state.messages.length - 1];
      const node = last && list.querySelector(`[data-id="${last.id}"]`);
      if (node) { event.preventDefault(); edit(last, node); }
    }
  });

  const onKey = (event) => {
    if (!document.body.contains(pane)) { document.removeEventListener("keydown", onKey); return; }
    if (event.key === "Escape" && state.busy) { event.preventDefault(); stop(); return; }
    const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement;
    if (typing && (event.target !== input || input.value)) return;
    const last = state.messages[state.messages.length - 1];
    if (!last || last.role !== "assistant" || state.busy) return;
    if (event.key === "ArrowLeft") { event.preventDefault(); swipe(last, -1); }
    if (event.key === "ArrowRight") { event.preventDefault(); swipe(last, +1); }
  };
  document.addEventListener("keydown", onKey);

  if (!Number.isFinite(id)) {
    list.append(el("p", { class: "empty", text: t("chat.empty") }));
    return;
  }
  await load();
  input.focus();
}
