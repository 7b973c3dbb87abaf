// Visual-novel mode: a stage above the chat with the speakers' expression sprites and the last reply.
import { api, upload } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: { "vn.stage": "Visual novel stage", "vn.noSprites": "No sprites: upload a zip of emotion images (joy.png, anger.png, ...) below.",
    "vn.uploadZip": "Sprites zip", "vn.uploaded": "{count} sprites stored", "vn.thinking": "…" },
  ja: { "vn.stage": "ビジュアルノベル表示", "vn.noSprites": "立ち絵がありません。感情名の画像（joy.png、anger.png など）の zip を下からアップロードしてください。",
    "vn.uploadZip": "立ち絵 zip", "vn.uploaded": "立ち絵を {count} 枚保存しました", "vn.thinking": "…" },
});

const SHA256 = /^[0-9a-f]{64}$/;
const RECENT_SPEAKERS = 4; // in a group, members who spoke within the last messages share the stage
const assetUrl = (sha) => (SHA256.test(sha || "") ? `/api/assets/${sha}` : null);

export async function toggleVn(app, state) {
  const pane = app.main.querySelector(".chat-pane");
  const old = pane?.querySelector(".vn");
  if (old) { old.remove(); return null; }
  if (!pane) return null;
  loadCss("vn");

  const figures = el("div", { class: "vn-figures" });
  const name = el("div", { class: "vn-name" });
  const text = el("div", { class: "vn-text", id: "vn-text" });
  const note = el("p", { class: "vn-note", hidden: true, text: t("vn.noSprites") });
  const stage = el("section", { class: "vn", id: "vn-stage", "aria-label": t("vn.stage") },
    figures, el("div", { class: "vn-textbox" }, name, text), note);
  pane.insertBefore(stage, pane.querySelector("#messages") || pane.firstChild);

  const stages = new Map(); // character id -> {name, sprites: Map(label -> sha), background, avatar}
  const current = new Map(); // character id -> {label, sha, messageId}: what each figure shows now
  let chatCharacter = null;

  async function stageOf(characterId) {
    if (!stages.has(characterId)) {
      const raw = await api(`/api/characters/${characterId}/stage`);
      stages.set(characterId, { ...raw, sprites: new Map(raw.sprites.map((s) => [s.label, s.asset])) });
    }
    return stages.get(characterId);
  }

  function speakerOf(message) { return message.character_id || chatCharacter; }

  function figureFor(characterId) {
    let fig = figures.querySelector(`[data-character-id="${Number(characterId)}"]`);
    if (!fig) {
      fig = el("figure", { class: "vn-figure", dataset: { characterId: Number(characterId) } },
        el("img", { class: "vn-sprite", alt: "" }));
      figures.append(fig);
    }
    return fig;
  }

  function show(characterId, info, label, messageId) {
    const sha = info.sprites.get(label) || info.sprites.get("neutral") || info.avatar;
    const img = figureFor(characterId).querySelector("img");
    const url = assetUrl(sha);
    if (url && img.getAttribute("src") !== url) img.setAttribute("src", url);
    img.alt = `${info.name} (${label})`;
    img.dataset.label = label;
    current.set(characterId, { label, sha, messageId });
  }

  function showText(message) {
    name.textContent = message ? message.name || "" : "";
    text.textContent = message ? message.content : "";
  }

  async function update(next) {
    state = next;
    chatCharacter = state.chat?.character_id || null;
    const assistant = state.messages.filter((m) => m.role === "assistant");
    showText(assistant[assistant.length - 1]);
    const recent = [];
    for (const m of assistant.slice().reverse()) {
      const who = speakerOf(m);
      if (who && !recent.some((r) => r.who === who)) recent.push({ who, message: m });
      if (recent.length >= RECENT_SPEAKERS) break;
    }
    if (!recent.length && chatCharacter) recent.push({ who: chatCharacter, message: null });
    const keep = new Set(recent.map((r) => String(r.who)));
    for (const fig of figures.querySelectorAll(".vn-figure")) if (!keep.has(fig.dataset.characterId)) fig.remove();
    let anySprites = false;
    for (const { who, message } of recent.reverse()) {
      const info = await stageOf(who);
      anySprites ||= info.sprites.size > 0;
      if (info.background && !stage.dataset.background) {
        stage.dataset.background = info.background;
        const url = assetUrl(info.background);
        if (url) stage.style.backgroundImage = `url("${url}")`;
      }
      const shown = current.get(who);
      const stored = message?.meta?.expression;
      if (stored && (!shown || message.id >= shown.messageId)) show(who, info, stored, message.id);
      else if (!shown) show(who, info, "neutral", 0);
    }
    note.hidden = anySprites;
  }

  async function onReply(message) {
    showText(message);
    const who = speakerOf(message);
    if (!who || !message.id) return;
    try {
      const info = await stageOf(who);
      const result = await api(`/api/messages/${message.id}/expression`, { method: "POST" });
      const shown = current.get(who);
      if (shown && shown.messageId > message.id) return; // a later reply already changed the face
      if (result.sprite) info.sprites.set(result.label, result.sprite);
      show(who, info, result.label, message.id);
    } catch (err) {
      toast(err.message, "error");
    }
  }

  // sprites can be added from the stage itself: a zip of <emotion>.png files
  const zipInput = el("input", { type: "file", id: "vn-zip", accept: ".zip,application/zip", class: "vn-zip" });
  zipInput.addEventListener("change", async () => {
    const file = zipInput.files?.[0];
    if (!file || !chatCharacter) return;
    try {
      const body = await upload(`/api/characters/${chatCharacter}/sprites/zip`, file);
      toast(t("vn.uploaded", { count: body.length }));
      stages.delete(chatCharacter);
      current.delete(chatCharacter);
      clear(figures);
      await update(state);
    } catch (err) { toast(err.message, "error"); }
    zipInput.value = "";
  });
  stage.append(el("label", { class: "vn-upload" }, t("vn.uploadZip"), zipInput));

  const vn = { update: (next) => update(next).catch((err) => toast(err.message, "error")), onReply };
  await update(state).catch((err) => toast(err.message, "error"));
  return vn;
}
