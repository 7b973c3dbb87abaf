// Models & connection: the running engine, the model library, Hugging Face downloads, presets, remote backend.
import { api, stream } from "../api.js";
import { clear, el, loadCss, toast } from "../dom.js";
import { addMessages, t } from "../i18n.js";

addMessages({
  en: {
    "models.title": "Models", "models.current": "Running now", "models.loading": "Loading {name}…",
    "models.library": "Library", "models.name": "Name", "models.quant": "Quant", "models.size": "Size",
    "models.loaded": "loaded", "models.load": "Load", "models.fit": "Fit", "models.hub": "Hugging Face",
    "models.search": "Search", "models.query": "Search GGUF models", "models.files": "Files",
    "models.download": "Download", "models.cancel": "Cancel", "models.downloaded": "Downloaded {name}",
    "models.recommended": "Recommended", "models.samplerPresets": "Sampler presets",
    "models.promptPresets": "System prompt presets", "models.presetName": "Preset name",
    "models.create": "Create", "models.save": "Save", "models.delete": "Delete",
    "models.remote": "Remote backend", "models.url": "URL (OpenAI-compatible, e.g. http://127.0.0.1:8000/v1)",
    "models.key": "API key (never shown again)", "models.model": "Model (optional)", "models.connect": "Connect",
    "models.connected": "Connected to {model}", "models.none": "Nothing here yet.",
    "models.fit.full_gpu": "fits GPU", "models.fit.partial_gpu": "partly GPU", "models.fit.cpu_only": "CPU only",
    "models.fit.will_not_fit": "too big", "models.mainPrompt": "Main prompt", "models.postHistory": "Post-history instructions",
  },
  ja: {
    "models.title": "モデル", "models.current": "実行中", "models.loading": "{name} を読み込み中…",
    "models.library": "ライブラリ", "models.name": "名前", "models.quant": "量子化", "models.size": "サイズ",
    "models.loaded": "読み込み済み", "models.load": "読み込む", "models.fit": "適合", "models.hub": "Hugging Face",
    "models.search": "検索", "models.query": "GGUF モデルを検索", "models.files": "ファイル",
    "models.download": "ダウンロード", "models.cancel": "中止", "models.downloaded": "{name} をダウンロードしました",
    "models.recommended": "おすすめ", "models.samplerPresets": "サンプラーのプリセット",
    "models.promptPresets": "システムプロンプトのプリセット", "models.presetName": "プリセット名",
    "models.create": "作成", "models.save": "保存", "models.delete": "削除",
    "models.remote": "リモートバックエンド", "models.url": "URL（OpenAI 互換、例 http://127.0.0.1:8000/v1）",
    "models.key": "API キー（再表示されません）", "models.model": "モデル（任意）", "models.connect": "接続",
    "models.connected": "{model} に接続しました", "models.none": "まだありません。",
    "models.fit.full_gpu": "GPU に収まる", "models.fit.partial_gpu": "一部 GPU", "models.fit.cpu_only": "CPU のみ",
    "models.fit.will_not_fit": "大きすぎる", "models.mainPrompt": "メインプロンプト", "models.postHistory": "履歴後の指示",
  },
});

const SAMPLER = [["temperature", 0.01], ["top_p", 0.01], ["top_k", 1], ["min_p", 0.01], ["typical_p", 0.01],
  ["repeat_penalty", 0.01], ["repeat_last_n", 1], ["presence_penalty", 0.01], ["frequency_penalty", 0.01], ["seed", 1]];

function bytes(n) {
  if (!Number.isFinite(n) || n <= 0) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function section(title, ...children) {
  return el("section", { class: "models-section" }, el("h3", { text: title }), ...children);
}

export async function show(app) {
  loadCss("models");
  const current = el("div", { class: "engine-current", id: "engine-current" });
  const library = el("tbody", { id: "model-library" });
  const results = el("div", { class: "hub-results", id: "hub-results" });
  const files = el("div", { class: "hub-files", id: "hub-files" });
  const downloads = el("div", { class: "downloads", id: "downloads" });
  const recommended = el("ul", { class: "recommended", id: "recommended" });
  const samplerList = el("div", { class: "preset-list", id: "sampler-presets" });
  const promptList = el("div", { class: "preset-list", id: "prompt-presets" });

  async function refreshEngine() {
    const info = await api("/api/engine");
    clear(current);
    if (info.loading) { current.append(el("span", { text: t("models.loading", { name: info.loading }) })); return; }
    current.append(el("strong", { class: "engine-model", text: info.model || "?" }),
      el("span", { class: "tag", text: info.engine || "" }), el("span", { class: "tag", text: `n_ctx ${info.n_ctx}` }));
    if (info.remote) current.append(el("span", { class: "tag", text: info.remote.base_url }));
  }

  async function refreshLibrary() {
    const { models } = await api("/api/models");
    clear(library);
    for (const m of models) {
      const verdict = el("span", { class: "fit-verdict" });
      library.append(el("tr", { dataset: { modelId: m.id } },
        el("td", { class: "model-name", text: m.name }),
        el("td", { text: m.quantization || "" }),
        el("td", { text: bytes(m.size) }),
        el("td", {}, m.loaded ? el("span", { class: "tag loaded", text: t("models.loaded") }) : ""),
        el("td", { class: "actions" },
          el("button", { type: "button", class: "load", text: t("models.load"), disabled: m.loaded, onclick: async (ev) => {
            ev.target.disabled = true;
            try { await api(`/api/models/${m.id}/load`, { method: "POST" }); await refreshAll(); } catch (err) { toast(err.message, "error"); ev.target.disabled = false; }
          } }),
          el("button", { type: "button", class: "fit", text: t("models.fit"), onclick: async () => {
            try { verdict.textContent = (await api(`/api/models/${m.id}/fit`)).message; } catch (err) { toast(err.message, "error"); }
          } }),
          verdict)));
    }
  }

  async function refreshAll() { await Promise.all([refreshEngine(), refreshLibrary()]); }

  // -- Hugging Face --
  const query = el("input", { type: "search", id: "hub-query", placeholder: t("models.query") });
  const sort = el("select", { id: "hub-sort" }, ...["downloads", "likes", "recent"].map((s) => el("option", { value: s, text: s })));
  const searchBtn = el("button", { type: "button", id: "hub-search", class: "primary", text: t("models.search") });
  async function search() {
    try {
      const found = await api(`/api/hub/search?q=${encodeURIComponent(query.value)}&sort=${encodeURIComponent(sort.value)}`);
      clear(results);
      if (!found.length) results.append(el("p", { class: "empty", text: t("models.none") }));
      for (const r of found) {
        results.append(el("div", { class: "hub-repo", dataset: { repo: r.id } },
          el("span", { class: "repo-id", text: r.id }),
          el("span", { class: "tag", text: `⬇ ${r.downloads}` }), el("span", { class: "tag", text: `♥ ${r.likes}` }),
          el("button", { type: "button", class: "open-files", text: t("models.files"), onclick: () => openFiles(r.id) })));
      }
    } catch (err) { toast(err.message, "error"); }
  }
  searchBtn.addEventListener("click", search);
  query.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.isComposing) search(); });

  async function openFiles(repo) {
    try {
      const groups = await api(`/api/hub/files?repo=${encodeURIComponent(repo)}`);
      clear(files);
      files.append(el("h4", { text: repo }), el("table", { class: "data" },
        el("thead", {}, el("tr", {}, ...[t("models.name"), t("models.quant"), t("models.size"), t("models.fit"), ""].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...groups.map((g) => el("tr", { class: "hub-file", dataset: { name: g.name } },
          el("td", { text: g.name }), el("td", { text: g.quant || "" }), el("td", { text: bytes(g.total_size) }),
          el("td", {}, el("span", { class: `tag fit-${g.fit}`, text: t(`models.fit.${g.fit}`) })),
          el("td", {}, el("button", { type: "button", class: "download", text: t("models.download"), onclick: () => download(repo, g.name) })))))));
    } catch (err) { toast(err.message, "error"); }
  }

  async function download(repo, file) {
    const bar = el("progress", { class: "download-progress", max: 1, value: 0 });
    const label = el("span", { class: "download-label", text: `${repo} · ${file}` });
    const speed = el("span", { class: "download-speed" });
    let downloadId = null;
    const cancel = el("button", { type: "button", class: "cancel-download", text: t("models.cancel"), onclick: async () => {
      if (downloadId) await api(`/api/hub/downloads/${encodeURIComponent(downloadId)}/cancel`, { method: "POST" }).catch(() => {});
    } });
    const row = el("div", { class: "download-row" }, label, bar, speed, cancel);
    downloads.append(row);
    try {
      await stream("/api/hub/pull", { repo_id: repo, file }, (kind, data) => {
        if (kind === "download") downloadId = data.id;
        else if (kind === "progress") {
          if (data.total) { bar.max = data.total; bar.value = data.downloaded; }
          speed.textContent = `${bytes(data.downloaded)} / ${bytes(data.total)} · ${bytes(data.bytes_per_s)}/s`;
        } else if (kind === "model") {
          bar.max = 1; bar.value = 1;
          row.classList.add("done");
          toast(t("models.downloaded", { name: data.name }));
        } else if (kind === "error") {
          row.classList.add("failed");
          speed.textContent = data.message;
          toast(data.message, "error");
        }
      });
    } catch (err) { toast(err.message, "error"); }
    cancel.disabled = true;
    await refreshLibrary();
  }

  // -- presets --
  const samplerName = el("input", { id: "sampler-preset-name", placeholder: t("models.presetName"), maxlength: 200 });
  const samplerFields = SAMPLER.map(([name, step]) => [name, el("input", { id: `preset-${name}`, type: "number", step })]);
  function samplerValues() {
    const out = {};
    for (const [name, input] of samplerFields) if (input.value !== "") out[name] = Number(input.value);
    return out;
  }
  const promptName = el("input", { id: "prompt-preset-name", placeholder: t("models.presetName"), maxlength: 200 });
  const mainPrompt = el("textarea", { id: "preset-main-prompt", rows: 3 });
  const postHistory = el("textarea", { id: "preset-post-history", rows: 2 });

  async function refreshPresets() {
    const presets = await api("/api/presets");
    for (const [list, kind] of [[samplerList, "sampler"], [promptList, "system_prompt"]]) {
      clear(list);
      const mine = presets.filter((p) => p.kind === kind);
      if (!mine.length) list.append(el("p", { class: "empty", text: t("models.none") }));
      for (const p of mine) {
        const summary = kind === "sampler"
          ? Object.entries(p.data).map(([k, v]) => `${k}=${v}`).join(" ")
          : (p.data.main_prompt || "").slice(0, 80);
        list.append(el("div", { class: "preset", dataset: { presetId: p.id } },
          el("strong", { class: "preset-name", text: p.name }), el("span", { class: "preset-summary", text: summary }),
          el("button", { type: "button", class: "save-preset", text: t("models.save"), onclick: async () => {
            const data = kind === "sampler" ? samplerValues() : { main_prompt: mainPrompt.value, post_history: postHistory.value };
            try { await api(`/api/presets/${p.id}`, { method: "PATCH", body: { data } }); await refreshPresets(); } catch (err) { toast(err.message, "error"); }
          } }),
          el("button", { type: "button", class: "delete-preset danger", text: t("models.delete"), onclick: async () => {
            try { await api(`/api/presets/${p.id}`, { method: "DELETE" }); await refreshPresets(); } catch (err) { toast(err.message, "error"); }
          } })));
      }
    }
  }

  async function createPreset(kind, name, data) {
    try {
      await api("/api/presets", { method: "POST", body: { kind, name: name.value, data } });
      name.value = "";
      await refreshPresets();
    } catch (err) { toast(err.message, "error"); }
  }

  // -- remote backend --
  const url = el("input", { id: "remote-url", type: "url", placeholder: "http://127.0.0.1:8000/v1" });
  const key = el("input", { id: "remote-key", type: "password", autocomplete: "off" });
  const remoteModel = el("input", { id: "remote-model" });
  const connect = el("button", { type: "button", id: "remote-connect", class: "primary", text: t("models.connect"), onclick: async () => {
    connect.disabled = true;
    try {
      const info = await api("/api/engine/remote", { method: "PUT",
        body: { base_url: url.value, api_key: key.value || null, model: remoteModel.value || null } });
      key.value = "";
      toast(t("models.connected", { model: info.model || "?" }));
      await refreshAll();
    } catch (err) { toast(err.message, "error"); }
    connect.disabled = false;
  } });

  app.main.append(el("div", { class: "page models-page" },
    el("h2", { text: t("models.title") }),
    section(t("models.current"), current),
    section(t("models.library"), el("table", { class: "data library" },
      el("thead", {}, el("tr", {}, ...[t("models.name"), t("models.quant"), t("models.size"), "", ""].map((h) => el("th", { text: h })))),
      library)),
    section(t("models.hub"), el("div", { class: "hub-bar" }, query, sort, searchBtn), results, files, downloads),
    section(t("models.recommended"), recommended),
    section(t("models.samplerPresets"), el("div", { class: "form preset-form" }, samplerName,
      el("div", { class: "sampler-grid" }, ...samplerFields.map(([name, input]) => el("label", {}, name, input))),
      el("button", { type: "button", id: "create-sampler-preset", class: "primary", text: t("models.create"),
        onclick: () => createPreset("sampler", samplerName, samplerValues()) })), samplerList),
    section(t("models.promptPresets"), el("div", { class: "form preset-form" }, promptName,
      el("label", {}, t("models.mainPrompt"), mainPrompt), el("label", {}, t("models.postHistory"), postHistory),
      el("button", { type: "button", id: "create-prompt-preset", class: "primary", text: t("models.create"),
        onclick: () => createPreset("system_prompt", promptName, { main_prompt: mainPrompt.value, post_history: postHistory.value }) })),
      promptList),
    section(t("models.remote"), el("div", { class: "form remote-form" },
      el("label", {}, t("models.url"), url), el("label", {}, t("models.key"), key),
      el("label", {}, t("models.model"), remoteModel), connect))));

  const loads = [refreshAll(), refreshPresets(),
    api("/api/models/recommendations").then((items) => {
      for (const r of items.slice(0, 12)) {
        recommended.append(el("li", {}, el("strong", { text: r.name }), " ",
          el("span", { class: "tag", text: r.suggested_quant || "" }), " ",
          el("button", { type: "button", class: "rec-files", text: t("models.files"), onclick: () => openFiles(r.hf_repo) }),
          el("span", { class: "rec-notes", text: r.notes ? ` ${r.notes}` : "" })));
      }
    })];
  for (const result of await Promise.allSettled(loads)) if (result.status === "rejected") toast(result.reason.message, "error");
}
