// provenance-verifier web app: plain DOM, no build step, no third-party code.
// Every string from a report, a manifest, metadata or a filename goes into the page as
// text (textContent / createTextNode), never as HTML; only http(s) links are clickable.
"use strict";

const KEY = "pv-api-key";
const $ = (id) => document.getElementById(id);
let me = { scope: null, publisher: null, verify_open: false };
let blinkTimer = null;

// -- small helpers -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function safeLink(url, text) {
  try {
    const u = new URL(url, location.origin);
    if (u.protocol === "http:" || u.protocol === "https:") {
      return el("a", { href: u.href, rel: "noopener noreferrer nofollow", target: "_blank" }, text || u.href);
    }
  } catch (e) { /* not a URL: shown as text below */ }
  return el("span", {}, text || String(url));
}

function apiKey() { return sessionStorage.getItem(KEY); }
function authHeaders() { const k = apiKey(); return k ? { Authorization: "Bearer " + k } : {}; }

const STATUS_WORDS = {
  400: "The request was not understood",
  401: "The API key was not accepted",
  403: "This key may not do that",
  404: "Not found",
  409: "Already registered",
  413: "The file is too large for this service (bytes or pixels)",
  415: "This is not a supported image format",
  422: "The image is corrupt, or its Content Credentials cannot be read or do not validate",
  429: "Too many requests: wait a moment and try again",
  500: "The service failed on this request",
  503: "The service is unavailable right now: try again shortly",
};

function problemWords(status, bodyText) {
  let detail = "";
  try { const p = JSON.parse(bodyText); detail = p.detail || p.title || ""; } catch (e) { /* not JSON */ }
  const words = STATUS_WORDS[status] || "The request failed (" + status + ")";
  return detail ? words + ": " + detail : words;
}

async function blobUrl(path) {
  const r = await fetch(path, { headers: authHeaders() });
  if (!r.ok) throw new Error(problemWords(r.status, await r.text()));
  return URL.createObjectURL(await r.blob());
}

function kb(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB"; }
function when(iso) { try { return new Date(iso).toLocaleString(); } catch (e) { return String(iso); } }

function upload(path, form, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.upload.onload = () => { if (onProgress) onProgress(1); };
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => resolve({ status: 0, text: "" });
    xhr.send(form);
  });
}

// -- key -----------------------------------------------------------------------------------

async function loadMe() {
  let r;
  try { r = await fetch("/v1/me", { headers: authHeaders() }); } catch (e) { r = null; }
  if (r && r.ok) {
    me = await r.json();
    $("key-error").textContent = "";
  } else {
    me = { scope: null, publisher: null, verify_open: false };
    if (r && r.status === 401 && apiKey()) $("key-error").textContent = "The saved API key was not accepted.";
    if (!r) $("key-error").textContent = "The service could not be reached.";
  }
  const who = me.scope ? "Using " + (me.scope === "admin" ? "an " : "a ") + me.scope + " key" + (me.publisher ? " (" + me.publisher.name + ")" : "")
    : (me.verify_open ? "No key: verification is open" : "No key");
  $("key-status").textContent = who;
  $("nav-console").hidden = me.scope !== "publisher";
  $("nav-operator").hidden = me.scope !== "admin";
  $("key-panel").hidden = Boolean(me.scope || me.verify_open);
}

function wireKey() {
  $("key-change").addEventListener("click", () => { $("key-panel").hidden = false; $("key-input").focus(); });
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key-input").value.trim());
    $("key-input").value = "";
    await loadMe();
    if (me.scope) route();
  });
  $("key-forget").addEventListener("click", async () => { sessionStorage.removeItem(KEY); await loadMe(); route(); });
}

// -- the report ------------------------------------------------------------------------------

const VERDICTS = {
  c2pa_trusted: ["ok", "Content Credentials from a trusted signer"],
  c2pa_valid_untrusted: ["warn", "Valid Content Credentials, but the signer is not recognised"],
  c2pa_invalid: ["bad", "Content Credentials are invalid or the image was tampered with"],
  match_unmodified: ["ok", "Unmodified copy of a registered original"],
  match_benign: ["ok", "Benign changes from a registered original"],
  match_manipulated: ["bad", "Manipulated: edited from a registered original"],
  no_match: ["info", "Not found in the registry"],
};

function banner(r) {
  const [cls, title] = VERDICTS[r.verdict] || ["info", r.verdict];
  const box = el("div", { class: "banner " + cls, role: "status", id: "verdict", "data-verdict": r.verdict },
    el("h2", {}, title), el("p", {}, r.summary));
  if (r.match) box.append(el("p", {}, "Registered by ", el("strong", {}, r.match.publisher.name), " on " + when(r.match.registered_at) + "."));
  return box;
}

function stackOf(imgs) {
  const s = el("div", { class: "stack" });
  imgs.forEach((img) => s.append(img));
  return s;
}

function compareView(r, queryUrl) {
  const sec = el("section", { class: "panel", "aria-labelledby": "cmp-title", id: "compare" },
    el("h2", { id: "cmp-title" }, "Compare with the registered original"));
  const m = r.manipulation;
  const layerUrl = m && m.heatmap_layer_url;
  const orig = el("img", { alt: "The registered original, aligned to the submitted image", id: "original-img" });
  const query = el("img", { alt: "The submitted image", id: "query-img" });
  const layers = [el("img", { alt: "Manipulation heatmap over the submitted image", class: "layer", id: "heat-query", hidden: true }),
    el("img", { alt: "Manipulation heatmap over the original", class: "layer", id: "heat-original", hidden: true })];
  const note = el("p", { class: "muted", id: "compare-note" });

  const controls = el("div", { class: "compare-controls" });
  const modes = [["side", "Side by side"], ["slider", "Slider"], ["blink", "Blink"]];
  const modeBox = el("fieldset", { class: "compare-controls" }, el("legend", { class: "visually-hidden" }, "Compare mode"));
  modes.forEach(([v, label], i) => {
    const id = "mode-" + v;
    modeBox.append(el("input", { type: "radio", name: "mode", id, value: v, checked: i === 0 }), el("label", { for: id }, label));
  });
  controls.append(modeBox);
  let heatToggle = null, opacity = null;
  if (layerUrl) {
    heatToggle = el("input", { type: "checkbox", id: "heat-toggle", checked: true });
    opacity = el("input", { type: "range", id: "heat-opacity", min: "0", max: "100", value: "70", "aria-label": "Heatmap opacity" });
    controls.append(el("span", {}, heatToggle, el("label", { for: "heat-toggle" }, " Show where it was changed")),
      el("span", {}, el("label", { for: "heat-opacity" }, "Opacity "), opacity));
  }
  const reveal = el("input", { type: "range", id: "reveal", min: "0", max: "100", value: "50", "aria-label": "Reveal the original" });
  const revealBox = el("p", { hidden: true }, el("label", { for: "reveal" }, "Reveal the original "), reveal);
  const panes = el("div", { class: "panes" });
  sec.append(controls, revealBox, panes, note);

  const qFig = el("figure", {}, stackOf([query, layers[0]]), el("figcaption", {}, "Submitted image"));
  const oFig = el("figure", {}, stackOf([orig, layers[1]]),
    el("figcaption", {}, "Registered original (" + r.match.publisher.name + "), aligned to the submitted image"));
  const overlay = el("img", { alt: "The registered original over the submitted image", class: "top", id: "overlay-img" });

  function applyHeat() {
    const on = heatToggle && heatToggle.checked;
    layers.forEach((l) => { l.hidden = !on; l.style.opacity = opacity ? String(opacity.value / 100) : "0.7"; });
  }
  function setMode(mode) {
    if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; }
    panes.replaceChildren();
    revealBox.hidden = mode !== "slider";
    if (mode === "side") {
      panes.className = "panes"; overlay.remove(); overlay.style.clipPath = ""; overlay.hidden = false;
      panes.append(qFig, oFig);
    } else {
      panes.className = "panes single";
      const stack = stackOf([query, overlay, layers[0]]);
      overlay.src = orig.src;
      panes.append(el("figure", {}, stack, el("figcaption", {}, mode === "slider" ? "Slide to reveal the original over the submitted image" : "Blinking between the submitted image and the original")));
      if (mode === "slider") { overlay.hidden = false; overlay.style.clipPath = "inset(0 " + (100 - reveal.value) + "% 0 0)"; }
      else { overlay.style.clipPath = ""; blinkTimer = setInterval(() => { overlay.hidden = !overlay.hidden; }, 700); }
    }
    applyHeat();
  }
  modeBox.addEventListener("change", (e) => setMode(e.target.value));
  reveal.addEventListener("input", () => { overlay.style.clipPath = "inset(0 " + (100 - reveal.value) + "% 0 0)"; });
  if (heatToggle) { heatToggle.addEventListener("change", applyHeat); opacity.addEventListener("input", applyHeat); }
  setMode("side");

  const frame = (r.search && r.search.frame) || 0;
  if (frame > 0) {
    note.before(el("p", { id: "frame-note" }, "The match is in frame " + (frame + 1) + " of the " + r.input.frames
      + " of this animation (the first frame matched nothing)."));
  }
  if (queryUrl && frame > 0 && m && m.heatmap_url) {
    // the animation plays; the frame the comparison is about is the heatmap rendering's
    blobUrl(m.heatmap_url).then((u) => { query.src = u; }).catch(() => {});
    qFig.querySelector("figcaption").textContent = "Submitted animation, frame " + (frame + 1) + " (as the heatmap rendering)";
  } else if (queryUrl) {
    // a format the service reads but this browser does not show (HEIC outside Safari)
    query.addEventListener("error", () => {
      const cap = qFig.querySelector("figcaption");
      if (m && m.heatmap_url && !query.dataset.fallback) {
        query.dataset.fallback = "heatmap";
        blobUrl(m.heatmap_url).then((u) => { query.src = u; }).catch(() => {});
        cap.textContent = "Submitted image, as the heatmap rendering (this browser cannot show " + r.input.mime + ")";
      } else {
        cap.textContent = "This browser cannot show " + r.input.mime + " images; the report is not affected";
      }
    });
    query.src = queryUrl;
  } else if (m && m.heatmap_url) {
    blobUrl(m.heatmap_url).then((u) => { query.src = u; }).catch(() => {});
    qFig.querySelector("figcaption").textContent = "Submitted image (stored as the heatmap rendering only)";
  } else {
    qFig.querySelector("figcaption").textContent = "The submitted image is not stored with the report";
  }
  blobUrl("/v1/reports/" + r.id + "/original.jpg")
    .then((u) => { orig.src = u; overlay.src = u; })
    .catch((e) => { note.textContent = "The original cannot be shown: " + e.message; });
  if (layerUrl) blobUrl(layerUrl).then((u) => { layers.forEach((l) => { l.src = u; }); applyHeat(); }).catch(() => {});
  return sec;
}

function stateBadge(state) {
  const words = { Trusted: "trusted signer", Valid: "valid, signer not recognised", Invalid: "invalid" };
  return el("span", { class: "badge " + (state || "none") }, state ? words[state] || state : "no manifest of its own");
}

function ingredientTree(items) {
  const ul = el("ul", { class: "tree" });
  for (const ing of items || []) {
    const li = el("li", {}, el("span", {}, (ing.title || "untitled") + (ing.relationship ? " (" + ing.relationship + ")" : "")), stateBadge(ing.state));
    if (ing.failure_codes && ing.failure_codes.length) li.append(el("div", { class: "muted" }, "failures: " + ing.failure_codes.join(", ")));
    if (ing.ingredients && ing.ingredients.length) li.append(ingredientTree(ing.ingredients));
    ul.append(li);
  }
  return ul;
}

function manifestView(heading, m, who) {
  const s = m.summary || {};
  const signer = s.signer || {};
  const sec = el("section", { class: "panel credentials" }, el("h2", {}, heading));
  const dl = el("dl", { class: "kv" });
  const row = (k, v) => { if (v === null || v === undefined || v === "") return; dl.append(el("dt", {}, k), el("dd", {}, v)); };
  if (who) { row("Publisher", who.publisher); row("Registered", who.registered); }
  row("Validation", stateBadge(m.claim_state || m.state));
  row("Signer", (m.signer && m.signer.subject) || [signer.common_name, signer.issuer].filter(Boolean).join(", issued by ") || "unknown");
  if (m.signer && m.signer.issuer) row("Issued by", m.signer.issuer);
  if (m.trust_list && m.trust_list.category !== "none") row("Trust list", m.trust_list.name + " (" + m.trust_list.category + ")");
  for (const id of m.identity_assertions || []) {
    row("Identity", (id.subject || "unnamed") + (id.trusted === true ? " (verified identity)" : id.trusted === false ? " (identity credential not trusted)" : ""));
  }
  if (m.ocsp === "revoked") row("Revocation", "the signer's certificate is REVOKED");
  const ts = m.timestamp;
  row("Signed at", ts && ts.time
    ? when(ts.time) + (ts.trusted ? " (time-stamped by a trusted authority)" : " (time-stamped, but the authority is not trusted)")
    : "no trusted time-stamp: when it was signed is not verified");
  row("Title", s.title);
  row("Made with", s.claim_generator);
  if (who && who.caption) row("Caption", who.caption);
  if (who && who.source) row("Source", safeLink(who.source));
  const actions = (s.actions || []).map((a) => a.action.replace(/^c2pa\./, "") + (a.software_agent ? " (" + a.software_agent + ")" : ""));
  row("Actions", actions.length ? actions.join(", ") : "none recorded");
  sec.append(dl);
  if (m.ingredients && m.ingredients.length) sec.append(el("h3", {}, "Ingredients"), ingredientTree(m.ingredients));
  const codes = el("details", {}, el("summary", {}, "Validation codes"));
  const list = (label, items) => codes.append(el("p", {}, el("strong", {}, label + ": "), items && items.length ? items.join(", ") : "none"));
  list("Failures", m.failure_codes); list("Informational", m.informational_codes);
  sec.append(codes);
  return sec;
}

function credentialsView(r, root) {
  if (r.c2pa && r.c2pa.present && r.c2pa.state) root.append(manifestView("Content Credentials in this image", r.c2pa, null));
  const rm = r.recovered_manifest;
  if (rm) {
    const who = { publisher: rm.publisher.name, registered: when(rm.registered_at) };
    const sec = manifestView("Recovered Content Credentials (re-validated from the registry)", rm, who);
    root.append(sec);
    fetch("/v1/originals/" + rm.original_id, { headers: authHeaders() }).then(async (resp) => {
      if (!resp.ok) return;
      const o = await resp.json();
      const dl = sec.querySelector("dl");
      if (o.caption) dl.append(el("dt", {}, "Caption"), el("dd", {}, o.caption));
      if (o.source_url) dl.append(el("dt", {}, "Source"), el("dd", {}, safeLink(o.source_url)));
    }).catch(() => {});
  }
}

function candidatesView(r) {
  const c = (r.search && r.search.candidates) || [];
  if (!c.length) return null;
  const num = (v, digits) => (v === null || v === undefined ? "–" : v.toFixed(digits));
  const body = el("tbody");
  c.forEach((x) => {
    // each lead with its picture, title and publisher, to be checked by eye (verifier keys may see any original)
    const thumb = el("img", { alt: "Registered original ranked " + x.rank, class: "thumb" });
    blobUrl("/v1/originals/" + x.original_id + "/image?size=128").then((u) => { thumb.src = u; }).catch(() => {});
    const who = el("div", {}, el("code", {}, x.original_id));
    fetch("/v1/originals/" + x.original_id, { headers: authHeaders() }).then((res) => (res.ok ? res.json() : null)).then((o) => {
      if (o) who.replaceChildren(el("div", {}, o.title || "Untitled"), el("div", { class: "muted" }, o.publisher.name), el("code", {}, x.original_id));
    }).catch(() => {});
    body.append(el("tr", {}, el("td", {}, String(x.rank)), el("td", {}, thumb), el("td", {}, who),
      el("td", {}, num(x.same_image, 3)), el("td", {}, x.inliers === null || x.inliers === undefined ? "–" : String(x.inliers)),
      el("td", {}, num(x.score, 3)), el("td", {}, x.stage1_rank === null || x.stage1_rank === undefined ? "–" : String(x.stage1_rank))));
  });
  const title = r.match ? "Other candidates from the registry search" : "Closest registered originals (none is a match)";
  const threshold = r.search.decision_threshold === null ? "" : " The stage-1 decision threshold is " + r.search.decision_threshold.toFixed(3) + ".";
  return el("section", { class: "panel", id: "candidates" }, el("h2", {}, title),
    el("div", { class: "table-scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Rank"), el("th", {}, "Image"), el("th", {}, "Original"),
      el("th", {}, "Same image (PSEN)"), el("th", {}, "Inliers"), el("th", {}, "Stage-1 score"), el("th", {}, "Stage-1 rank"))), body)),
    el("p", { class: "muted" }, "Ranked after the pairwise stage where it ran. Same image: the pairwise network's probability "
      + "that this image shows the original; inliers: points of a geometric fit between them (a match without "
      + "the search's and the network's word needs 8); – where a candidate was not compared." + threshold));
}

function marksView(r) {
  const m = (r.search && r.search.publisher_marks) || [];
  if (!m.length) return null;
  const list = el("ul", {});
  m.forEach((x) => list.append(el("li", {}, x.publisher.name + (x.label ? " (" + x.label + ")" : "") + ": " + x.keypoints + " keypoints")));
  return el("section", { class: "panel", id: "marks" }, el("h2", {}, "Publisher marks on this image"), list,
    el("p", { class: "muted" }, "A watermark or credit line that many photos carry says nothing about where this one came from: "
      + "its keypoints were not counted as evidence of a match."));
}

function downloadsView(env) {
  const r = env.report;
  const json = URL.createObjectURL(new Blob([JSON.stringify(env, null, 2)], { type: "application/json" }));
  const jws = URL.createObjectURL(new Blob([env.jws], { type: "application/jose" }));
  const name = "report-" + r.id + ".json";
  return el("section", { class: "panel", id: "downloads" }, el("h2", {}, "Signed report"),
    el("p", {}, el("a", { href: json, download: name }, "Download the report (JSON)"), " · ",
      el("a", { href: jws, download: "report-" + r.id + ".jws" }, "Download the JWS"), " · ",
      el("a", { href: "/.well-known/jwks.json", download: "jwks.json" }, "Public keys (JWKS)"), " · ",
      el("a", { href: "/reports/" + r.id, id: "permalink" }, "Permalink")),
    el("p", {}, "Check it offline:"), el("pre", {}, "verifier report verify " + name + " --jwks jwks.json"));
}

function renderReport(root, env, queryUrl) {
  const r = env.report;
  root.replaceChildren();
  root.append(banner(r));
  if (r.match) root.append(compareView(r, queryUrl));
  credentialsView(r, root);
  const marks = marksView(r);
  if (marks) root.append(marks);
  const c = candidatesView(r);
  if (c) root.append(c);
  root.append(downloadsView(env));
}

// -- pages -----------------------------------------------------------------------------------

function show(id) {
  for (const p of ["verify-page", "report-page", "console-page", "operator-page"]) $(p).hidden = p !== id;
}

async function verifyFile(file) {
  const status = $("verify-status");
  status.className = "status";
  $("result").replaceChildren();
  if (!file) return;
  status.textContent = "Uploading " + file.name + " (" + kb(file.size) + ") …";
  const form = new FormData();
  form.append("file", file, file.name);
  const res = await upload("/v1/verify", form, (f) => {
    status.textContent = f < 1 ? "Uploading " + file.name + ": " + Math.round(f * 100) + " %" : "Checking Content Credentials and searching the registry …";
  });
  if (res.status === 200) {
    status.textContent = "Done.";
    renderReport($("result"), JSON.parse(res.text), URL.createObjectURL(file));
  } else {
    status.className = "status error";
    status.textContent = res.status === 0 ? "The service could not be reached." : problemWords(res.status, res.text);
  }
}

function wireDrop(zone, input, onFiles) {
  zone.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL" && e.target !== input) input.click(); });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); onFiles([...e.dataTransfer.files]); });
  input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
}

function showVerify() {
  show("verify-page");
  if (!me.scope && !me.verify_open) {
    $("verify-status").textContent = "Enter an API key (a verifier key) to verify images.";
  }
}

async function showReport(id) {
  show("report-page");
  const status = $("report-status");
  status.textContent = "Loading report …";
  const r = await fetch("/v1/reports/" + encodeURIComponent(id), { headers: authHeaders() });
  if (!r.ok) { status.className = "status error"; status.textContent = problemWords(r.status, await r.text()); return; }
  status.textContent = "";
  renderReport($("report-result"), await r.json(), null);
}

// -- publisher console -------------------------------------------------------------------------

function metadataJson() {
  const m = {};
  const t = $("meta-title").value.trim(), c = $("meta-caption").value.trim(), s = $("meta-source").value.trim();
  if (t) m.title = t;
  if (c) m.caption = c;
  if (s) m.source_url = s;
  return Object.keys(m).length ? JSON.stringify(m) : null;
}

async function registerFiles(files) {
  const list = $("register-results");
  const meta = metadataJson();
  for (const file of files) {
    const status = el("span", {}, "waiting …");
    const li = el("li", {}, el("strong", {}, file.name), " — ", status);
    list.append(li);
    const form = new FormData();
    form.append("file", file, file.name);
    if (meta) form.append("metadata", meta);
    const res = await upload("/v1/originals", form, (f) => { status.textContent = f < 1 ? "uploading " + Math.round(f * 100) + " %" : "checking …"; });
    if (res.status === 201) { status.textContent = "registered"; li.className = "ok"; }
    else if (res.status === 200) { status.textContent = "already registered"; li.className = "same"; }
    else { status.textContent = "refused: " + (res.status === 0 ? "the service could not be reached" : problemWords(res.status, res.text)); li.className = "bad"; }
  }
  loadOriginals($("search-input").value.trim());
}

async function loadOriginals(q) {
  const ul = $("originals"), status = $("list-status");
  status.className = "status";
  status.textContent = "Loading …";
  const r = await fetch("/v1/originals?limit=100" + (q ? "&q=" + encodeURIComponent(q) : ""), { headers: authHeaders() });
  if (!r.ok) { status.className = "status error"; status.textContent = problemWords(r.status, await r.text()); return; }
  const page = await r.json();
  status.textContent = page.total + (page.total === 1 ? " original" : " originals") + (q ? " matching “" + q + "”" : "");
  ul.replaceChildren();
  for (const o of page.items) {
    const img = el("img", { alt: "Thumbnail of " + (o.title || "an untitled original") });
    blobUrl("/v1/originals/" + o.id + "/image?size=256").then((u) => { img.src = u; }).catch(() => {});
    const del = el("button", { type: "button", class: "secondary" }, "Delete");
    const actions = el("div", {}, del);
    del.addEventListener("click", () => {
      const yes = el("button", { type: "button", class: "danger" }, "Yes, delete");
      const no = el("button", { type: "button", class: "secondary" }, "Cancel");
      actions.replaceChildren(el("span", {}, "Delete this original? "), yes, no);
      yes.focus();
      no.addEventListener("click", () => actions.replaceChildren(del));
      yes.addEventListener("click", async () => {
        const d = await fetch("/v1/originals/" + o.id, { method: "DELETE", headers: authHeaders() });
        if (d.status === 204) loadOriginals(q);
        else actions.replaceChildren(el("span", { class: "error" }, problemWords(d.status, await d.text())));
      });
    });
    ul.append(el("li", { "data-id": o.id }, img, el("div", { class: "title" }, o.title || "untitled"),
      el("div", { class: "muted" }, when(o.created_at) + " · " + (o.c2pa.state || "unsigned")), actions));
  }
}

// The marks panel serves the publisher console (its own marks, read only) and the operator page
// (any publisher's; enrol a suggestion or a file, remove). `marksOf` says whose and how.
let marksOf = { id: null, admin: false };

async function call(path, init) {
  try { return await fetch(path, { ...(init || {}), headers: authHeaders() }); } catch (e) { return null; }
}

async function failure(r) { return r ? problemWords(r.status, await r.text()) : "The service could not be reached."; }

async function loadMarks() {
  const ul = $("marks-list"), who = marksOf.id;
  const r = await call("/v1/publishers/" + who + "/marks");
  if (marksOf.id !== who) return;  // another publisher was chosen meanwhile
  if (!r || !r.ok) { ul.replaceChildren(el("li", { class: "bad" }, await failure(r))); return; }
  const marks = await r.json();
  ul.replaceChildren(...marks.map((m) => {
    const li = el("li", { "data-id": m.id }, el("strong", {}, m.label || "unlabelled"),
      " — " + m.width + " × " + m.height + " px, enrolled " + when(m.created_at) + " ");
    if (marksOf.admin) {
      const remove = el("button", { type: "button", class: "secondary" }, "Remove");
      remove.addEventListener("click", async () => {
        const d = await call("/v1/publishers/" + marksOf.id + "/marks/" + m.id, { method: "DELETE" });
        if (d && d.status === 204) loadMarks();
        else li.append(el("span", { class: "error" }, " " + await failure(d)));
      });
      li.append(remove);
    }
    return li;
  }));
  if (!marks.length) ul.replaceChildren(el("li", { class: "muted" }, "none enrolled"));
}

async function enrolMark(blob, name, label, status) {
  const form = new FormData();
  form.append("file", blob, name);
  if (label) form.append("label", label);
  const r = await call("/v1/publishers/" + marksOf.id + "/marks", { method: "POST", body: form });
  if (r && r.status === 201) { status.className = "ok"; status.textContent = "enrolled"; loadMarks(); return true; }
  status.className = "error";
  status.textContent = "refused: " + await failure(r);
  return false;
}

function whereWords(s) {
  const [x0, y0, x1, y1] = s.box.map((v) => v.toFixed(2));
  return s.frame === "share" ? "at " + x0 + "–" + x1 + " of the width, " + y0 + "–" + y1 + " of the height"
    : "at " + x0 + "…" + x1 + ", " + y0 + "…" + y1 + " photo " + s.frame.replace(/^(height|width) from /, "$1s from point ");
}

function suggestionView(s) {
  const li = el("li", {}, el("img", { src: "data:image/png;base64," + s.png_base64, alt: "An overlay the photos share" }),
    el("div", { class: "title" }, "On " + s.photos + " of " + s.looked_at + " photos"),
    el("div", { class: "muted" }, whereWords(s) + " · " + s.keypoints + " keypoints"));
  if (marksOf.admin) {
    const status = el("span", { role: "status" });
    const enrol = el("button", { type: "button" }, "Enrol as a mark");
    enrol.addEventListener("click", async () => {
      enrol.disabled = true;
      const bytes = Uint8Array.from(atob(s.png_base64), (c) => c.charCodeAt(0));
      const label = "suggested: " + s.photos + " of " + s.looked_at + " photos";
      if (!await enrolMark(new Blob([bytes], { type: "image/png" }), "suggested.png", label, status)) enrol.disabled = false;
    });
    li.append(el("div", {}, enrol, " ", status));
  }
  return li;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function findMarks(sample) {
  const ul = $("suggestions"), status = $("find-status"), button = $("find-marks-form").querySelector("button");
  status.className = "status";
  status.textContent = "Asking to look at the newest " + sample + " originals …";
  ul.replaceChildren();
  button.disabled = true;
  try {
    const who = marksOf.id;
    let r = await call("/v1/publishers/" + who + "/marks/suggestions?sample=" + encodeURIComponent(sample),
      { method: "POST" });
    if (marksOf.id !== who) return;  // another publisher was chosen meanwhile
    if (!r || !r.ok) { status.className = "status error"; status.textContent = await failure(r); return; }
    let job = await r.json();
    const url = "/v1/publishers/" + who + "/marks/suggestions/" + encodeURIComponent(job.id);
    while (job.state === "queued" || job.state === "running") {
      status.textContent = (job.state === "queued" ? "Waiting for the service to look at the newest "
        : "Looking at the newest ") + job.sample + " originals … (about 15 s per 300)";
      await sleep(1500);
      r = await call(url);
      if (marksOf.id !== who) return;
      if (!r || !r.ok) { status.className = "status error"; status.textContent = await failure(r); return; }
      job = await r.json();
    }
    if (job.state === "failed") {
      status.className = "status error";
      status.textContent = problemWords((job.problem && job.problem.status) || 500, JSON.stringify(job.problem || {}));
      return;
    }
    const found = job.suggestions;
    const advice = marksOf.admin
      ? "Enrol one only after looking: a frame or template the photos share recurs too, and the publisher's own file of the mark works better."
      : "If one is your mark, send the operator its file (the picture here is the overlay over a blur of your photos: your own file works better).";
    status.textContent = found.length
      ? found.length + (found.length === 1 ? " overlay recurs" : " overlays recur") + " over the " + job.looked_at
        + " photos looked at. " + advice
      : "No overlay recurs over the " + job.looked_at + " photos looked at (a mark is found once about a third of them carry it).";
    ul.append(...found.map(suggestionView));
  } finally {
    button.disabled = false;
  }
}

function openMarks(page, publisherId, admin) {
  marksOf = { id: publisherId, admin };
  const panel = $("marks-panel");
  $(page).append(panel);  // one panel, shown on whichever page asks for it
  panel.hidden = false;
  $("enrol-form").hidden = !admin;
  $("marks-intro").textContent = admin
    ? "A mark's features on a query never count as evidence of a match (for every verification, whoever asks). Enrolled:"
    : "A watermark, credit line or logo that many of your photos carry would make unrelated images look alike. Once "
      + "the operator enrols it as your mark, its features never count as evidence of a match. Your enrolled marks:";
  $("suggestions").replaceChildren();
  $("find-status").textContent = "";
  loadMarks();
}

// -- operator page -----------------------------------------------------------------------------

async function showOperator() {
  show("operator-page");
  if (me.scope !== "admin") {
    $("operator-who").textContent = "The operator page needs an admin key.";
    $("publisher-form").hidden = true;
    $("marks-panel").hidden = true;
    return;
  }
  $("publisher-form").hidden = false;
  $("operator-who").textContent = "";
  const r = await call("/v1/publishers");
  if (!r || !r.ok) { $("operator-who").textContent = await failure(r); return; }
  const publishers = await r.json();
  const select = $("publisher-select");
  select.replaceChildren(...publishers.map((p) => el("option", { value: p.id }, p.name)));
  if (!publishers.length) { $("operator-who").textContent = "No publishers yet (verifier publishers add NAME)."; $("marks-panel").hidden = true; return; }
  openMarks("operator-page", select.value, true);
}

function showConsole() {
  show("console-page");
  if (me.scope !== "publisher") {
    $("console-who").textContent = "The console needs a publisher key.";
    $("register-form").hidden = true;
    $("marks-panel").hidden = true;
    $("originals").replaceChildren();
    return;
  }
  $("register-form").hidden = false;
  $("console-who").textContent = "Registering as " + me.publisher.name + ".";
  loadOriginals("");
  openMarks("console-page", me.publisher.id, false);
}

function route() {
  const path = location.pathname;
  if (path.startsWith("/reports/")) showReport(path.split("/")[2] || "");
  else if (path === "/console") showConsole();
  else if (path === "/operator") showOperator();
  else showVerify();
}

document.addEventListener("DOMContentLoaded", async () => {
  wireKey();
  wireDrop($("drop"), $("file-input"), (files) => verifyFile(files[0]));
  wireDrop($("register-drop"), $("register-files"), registerFiles);
  $("register-form").addEventListener("submit", (e) => e.preventDefault());
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); loadOriginals($("search-input").value.trim()); });
  $("find-marks-form").addEventListener("submit", (e) => { e.preventDefault(); findMarks($("find-sample").value); });
  $("publisher-select").addEventListener("change", () => openMarks("operator-page", $("publisher-select").value, true));
  $("enrol-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("enrol-file").files[0];
    if (file) await enrolMark(file, file.name, $("enrol-label").value.trim(), $("enrol-status"));
  });
  document.addEventListener("paste", (e) => {
    if ($("verify-page").hidden) return;
    const f = [...(e.clipboardData ? e.clipboardData.files : [])][0];
    if (f) verifyFile(f);
  });
  await loadMe();
  route();
});
