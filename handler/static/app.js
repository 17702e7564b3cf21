// Face Interpolator try-it page. Plain JavaScript, no build step. Every action is one call to the public API
// (relative URLs, so the page works under an API Gateway stage prefix), and the last call is shown as curl.
"use strict";

const MAX_UPLOAD_BYTES = 10 * 1024 * 1024; // the API's MAX_IMAGE_BYTES default
const DEBOUNCE_MS = 250; // an edit is requested this long after the last slider movement
const CHANGED = 0.005; // a slider this far from the measured value counts as an edit
const KEY_STORE = "face-interpolator-api-key";
const FACE_VIEW_SCALE = 2.2; // the face view shows a square this many times the face box's side (hair, chin, ears)

// Friendly names; the API's CelebA names are shown as a tooltip. No_Beard is shown the other way round, as
// "Beard", and sent with the API's inverted alias "beard".
const LABELS = {
  Smiling: "Smile", Mouth_Slightly_Open: "Mouth open", Narrow_Eyes: "Narrow eyes",
  Bald: "Bald", Bangs: "Bangs / fringe", Black_Hair: "Black hair", Blond_Hair: "Blond hair",
  Brown_Hair: "Brown hair", Gray_Hair: "Grey hair", Wavy_Hair: "Wavy hair", Straight_Hair: "Straight hair",
  Receding_Hairline: "Receding hairline", No_Beard: "Beard", Mustache: "Moustache", Goatee: "Goatee",
  "5_o_Clock_Shadow": "Stubble", Sideburns: "Sideburns", Arched_Eyebrows: "Arched eyebrows",
  Bushy_Eyebrows: "Bushy eyebrows", Bags_Under_Eyes: "Bags under eyes", Big_Lips: "Full lips", Big_Nose: "Big nose",
  Pointy_Nose: "Pointy nose", Chubby: "Chubby", Double_Chin: "Double chin", High_Cheekbones: "High cheekbones",
  Oval_Face: "Oval face", Pale_Skin: "Pale skin", Rosy_Cheeks: "Rosy cheeks", Eyeglasses: "Glasses",
  Wearing_Hat: "Hat", Wearing_Earrings: "Earrings", Wearing_Necklace: "Necklace", Wearing_Necktie: "Necktie",
  Heavy_Makeup: "Make-up", Wearing_Lipstick: "Lipstick", Young: "Young", Male: "Masculine",
};
const INVERTED = { No_Beard: "beard" }; // CelebA name -> the API alias that means its opposite
const GROUPS = [
  ["expression", "Expression"], ["age_gender", "Age and gender"], ["hair", "Hair"], ["facial_hair", "Facial hair"],
  ["accessories", "Accessories and make-up"], ["face", "Face and skin"], ["other", "Other"],
];

// One message per error code the API (or API Gateway in front of it) returns.
const ERROR_TEXT = {
  no_face: "No face was found in this photo. Use a photo where a face looks towards the camera, upright and not too small.",
  face_not_frontal: "A face was found, but it is turned too far from the camera. Use a photo where the face looks towards the camera.",
  unsupported_image: "This file is not an image the service can read. Use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
  unsupported_media_type: "The service could not read this upload. Use a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
  payload_too_large: "This photo is too large to upload: the limit is 10 MB. Use a smaller or more compressed photo.",
  image_too_large: "This photo has too many pixels (the limit is 40 megapixels). Scale it down and try again.",
  result_too_large: "The result would be too large to send back. Use a smaller photo, or fewer frames for an animation.",
  url_invalid: "That image address is not a valid URL.",
  url_scheme_not_allowed: "Only http:// and https:// image addresses can be fetched.",
  url_host_not_allowed: "That image address points to a private or local network, which the service does not fetch from.",
  url_too_many_redirects: "That image address redirects too many times.",
  url_too_large: "The image at that address is too large (the limit is 10 MB).",
  url_fetch_failed: "The image at that address could not be downloaded.",
  url_timeout: "The image at that address took too long to download.",
  results_storage_unavailable: "Result links are not available on this server; ask for the image itself instead.",
  idempotency_key_invalid: "The Idempotency-Key header is not valid (1-255 printable characters).",
  idempotency_key_reused: "This Idempotency-Key was already used for a different request.",
  idempotency_in_progress: "The same request is still being processed. Wait a moment and try again.",
  idempotency_unavailable: "Retries cannot be checked right now. Try again shortly.",
  idempotent_result_not_stored: "This request was already processed, but its result was too large to keep for a retry.",
  invalid_request: "The request was not accepted.",
  unknown_attribute: "The service does not know one of these attributes.",
  face_index_out_of_range: "That face is no longer in the photo. Upload the photo again.",
  not_acceptable: "The service cannot produce that format.",
  invalid_api_key: "This service needs a valid API key: enter yours under \"API key\" at the top of the page.",
  quota_exceeded: "The monthly quota of this API key is used up.",
  throttled: "Too many requests at once. Wait a moment and try again.",
  timeout: "The service took too long to answer. Try a smaller photo or fewer frames.",
  request_rejected: "The API gateway refused the request.",
  bad_request: "The service could not read this upload. Try again, or use another photo.",
  busy: "The service is busy with other photos right now. Try again in a moment.",
  internal_error: "Something went wrong in the service. Try again in a moment.",
  network: "The service could not be reached. Check your connection and try again.",
};
const STATUS_CODES = { 403: "invalid_api_key", 413: "payload_too_large", 415: "unsupported_image", 429: "throttled",
  504: "timeout" };

const $ = (id) => document.getElementById(id);
const state = {
  catalog: null, // [{name, group, accuracy, experimental}] from /v1/attributes
  photo: null, // {base64, name, url}
  faces: [], face: 0, measured: {}, values: {},
  view: "face", // the compare view: zoomed to the selected face, or the whole photo
  seq: 0, inflight: null, timer: null, // the newest edit request wins; older ones are aborted
  urls: {}, // object URLs in use, by slot
};

class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

// ---- talking to the API -------------------------------------------------------------------------------------
function apiUrl(path) { return new URL(path, document.baseURI).toString(); }

function apiKey() { return $("api-key").value.trim(); }

async function api(path, body, signal) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (apiKey()) headers["x-api-key"] = apiKey();
  let response;
  try {
    response = await fetch(apiUrl(path), { method: body === undefined ? "GET" : "POST", headers, signal,
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("network", String(err), 0);
  }
  let payload = null;
  try { payload = await response.json(); } catch (_) { /* not JSON: a proxy's error page */ }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    const code = error.code || STATUS_CODES[response.status] || (response.status >= 500 ? "internal_error" : "http");
    throw new ApiError(code, error.message || (payload && payload.message) || response.statusText, response.status);
  }
  return payload;
}

function explain(err) {
  const friendly = ERROR_TEXT[err.code];
  if (!friendly) return `The request failed (${err.status || "no answer"}): ${err.message}`;
  // For request problems the API's own message says which field; show it after the friendly text.
  const detail = ["invalid_request", "unknown_attribute", "not_acceptable", "request_rejected"].includes(err.code) ? ` ${err.message}` : "";
  return friendly + detail;
}

function showError(err) { showMessage(explain(err), err.code); }

function showMessage(text, code = "") {
  const box = $("message");
  box.textContent = text;
  box.dataset.code = code;
  box.hidden = false;
  setStatus("");
}

function clearError() { $("message").hidden = true; $("message").textContent = ""; }

function setStatus(text) { $("status").textContent = text; }

// ---- images as base64 and object URLs -------------------------------------------------------------------------
function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function base64ToBlob(text, type) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

function objectUrl(slot, blob) {
  if (state.urls[slot]) URL.revokeObjectURL(state.urls[slot]);
  state.urls[slot] = URL.createObjectURL(blob);
  return state.urls[slot];
}

function extension(contentType) { return (contentType.split("/")[1] || "png").replace("jpeg", "jpg"); }

// ---- the attribute sliders ----------------------------------------------------------------------------------
function label(name) { return LABELS[name] || name.replace(/_/g, " "); }

// Sliders show presence (0..1); for an inverted attribute that is 1 - the API's score.
function shown(name, score) { return name in INVERTED ? 1 - score : score; }

function valueText(name, value) { return `${label(name)}: ${Math.round(value * 100)}%`; }

async function loadCatalog() {
  if (state.catalog) return;
  const body = await api("v1/attributes");
  // edit_accuracy (0..1) and experimental come from the model card's measurements where it has them; an attribute
  // without them gets no badge.
  state.catalog = body.attributes.map((a) => ({ name: a.name, group: a.group,
    accuracy: typeof a.edit_accuracy === "number" ? a.edit_accuracy : null, experimental: a.experimental === true }));
  const groups = $("groups");
  groups.replaceChildren();
  for (const [group, title] of GROUPS) {
    const members = state.catalog.filter((a) => a.group === group);
    if (!members.length) continue;
    const fieldset = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = title;
    fieldset.append(legend);
    for (const attribute of members) fieldset.append(sliderRow(attribute));
    groups.append(fieldset);
  }
}

function sliderRow({ name, accuracy, experimental }) {
  const row = document.createElement("div");
  row.className = "slider";
  const id = `attr-${name}`;
  row.innerHTML = `<label for="${id}" title="${name}"><span class="name"></span><output for="${id}">–</output></label>` +
    `<input type="range" id="${id}" min="0" max="1" step="0.01" value="0">`;
  row.querySelector(".name").textContent = label(name);
  const input = row.querySelector("input");
  input.dataset.attribute = name;
  const badge = reliabilityBadge(name, accuracy, experimental);
  if (badge) {
    row.querySelector(".name").after(badge);
    input.setAttribute("aria-describedby", badge.id);
  }
  input.addEventListener("input", () => {
    state.values[name] = Number(input.value);
    updateReadout(name);
    scheduleEdit();
  });
  return row;
}

// How often the edit worked when measured (the model card's edit accuracy on the CelebA test split: the share of test
// faces where an independent classifier saw the attribute flip), shown beside the slider's name.
function reliabilityBadge(name, accuracy, experimental) {
  if (accuracy === null && !experimental) return null;
  const badge = document.createElement("span");
  badge.id = `reliability-${name}`;
  badge.className = "reliability";
  const percent = accuracy === null ? null : Math.round(accuracy * 100);
  if (experimental) {
    badge.classList.add("experimental");
    badge.textContent = percent === null ? "experimental" : `experimental · ${percent}%`;
  } else {
    badge.classList.add(accuracy >= 0.75 ? "good" : accuracy >= 0.4 ? "fair" : "weak");
    badge.textContent = `works ${percent}%`;
  }
  badge.title = (percent === null ? "" :
    `Measured: this edit showed on ${percent}% of test faces (checked by a separate classifier). `) +
    (experimental ? "Experimental: expect a faint or odd change." : "");
  return badge;
}

function updateReadout(name) {
  const input = $(`attr-${name}`);
  if (!input) return;
  const value = state.values[name] ?? 0;
  const measured = state.measured[name];
  const out = input.parentElement.querySelector("output");
  out.textContent = value.toFixed(2);
  out.classList.toggle("changed", measured !== undefined && Math.abs(value - measured) >= CHANGED);
  input.setAttribute("aria-valuetext", valueText(name, value) +
    (measured !== undefined ? ` (measured ${Math.round(measured * 100)}%)` : ""));
}

function setSliders(values) {
  state.values = { ...values };
  for (const name of Object.keys(values)) {
    const input = $(`attr-${name}`);
    if (input) input.value = String(values[name]);
    updateReadout(name);
  }
}

// The attributes the person moved, as the API's edits: {name or inverted alias: target}.
function edits() {
  const out = {};
  for (const [name, value] of Object.entries(state.values)) {
    if (Math.abs(value - state.measured[name]) < CHANGED) continue;
    out[INVERTED[name] || name] = Math.round(value * 100) / 100;
  }
  return out;
}

function measuredFor(editsBody) {
  const out = {};
  for (const key of Object.keys(editsBody)) {
    const name = Object.keys(INVERTED).find((n) => INVERTED[n] === key) || key;
    out[key] = Math.round(state.measured[name] * 100) / 100;
  }
  return out;
}

// ---- choosing a photo and a face ----------------------------------------------------------------------------
async function loadPhoto(blob, name) {
  clearError();
  if (blob.size > MAX_UPLOAD_BYTES) {
    showError(new ApiError("payload_too_large", `${blob.size} bytes`, 413));
    return;
  }
  setStatus("Finding faces…");
  let base64, result;
  try {
    base64 = await blobToBase64(blob);
    const body = { image_base64: base64 };
    showCurl("v1/analyze", body, name);
    [result] = await Promise.all([api("v1/analyze", body), loadCatalog()]);
  } catch (err) {
    showError(err);
    return;
  }
  const url = objectUrl("photo", blob);
  state.photo = { base64, name, url };
  state.faces = result.faces;
  if (!state.faces.length) { showError(new ApiError("no_face", "", 422)); return; }
  $("before-img").src = url;
  $("download-photo").href = url;
  $("download-photo").download = name;
  $("workspace").hidden = false;
  $("animate").hidden = false;
  $("api").hidden = false;
  const largest = state.faces.reduce((best, f) => (f.box[2] * f.box[3] > best.box[2] * best.box[3] ? f : best));
  await imageLoaded($("before-img"));
  drawFaceBoxes();
  selectFace(largest.index);
  const n = state.faces.length;
  $("faces-summary").textContent = n === 1 ? "One face found." :
    `${n} faces found; the largest is selected. Choose "Whole photo" and click another face to edit it instead.`;
  setStatus(`${n === 1 ? "One face" : `${n} faces`} found. Move a slider to edit.`);
}

function imageLoaded(img) {
  return img.complete && img.naturalWidth ? Promise.resolve() :
    new Promise((resolve) => { img.onload = () => resolve(); img.onerror = () => resolve(); });
}

// ---- the compare view: one large box, the photo and the result cropped alike ----------------------------------
// The crop, in the photo's pixels: a square around the selected face, or the whole photo.
function viewCrop() {
  const img = $("before-img");
  const w = img.naturalWidth, h = img.naturalHeight;
  const face = state.faces.find((f) => f.index === state.face);
  if (state.view === "photo" || !face) return { x: 0, y: 0, w, h };
  const [fx, fy, fw, fh] = face.box;
  const side = Math.min(Math.max(fw, fh) * FACE_VIEW_SCALE, w, h);
  const clamp = (v, hi) => Math.min(Math.max(v, 0), Math.max(hi, 0));
  return { x: clamp(fx + fw / 2 - side / 2, w - side), y: clamp(fy + fh / 2 - side / 2, h - side), w: side, h: side };
}

function layoutView() {
  const img = $("before-img");
  if (!img.naturalWidth) return;
  const crop = viewCrop();
  const compare = $("compare");
  compare.dataset.view = state.view;
  compare.style.setProperty("--aspect", String(crop.w / crop.h));
  // Each layer is the whole photo, scaled so the crop fills the box and shifted so the crop is in it.
  const geometry = { left: `${(-100 * crop.x) / crop.w}%`, top: `${(-100 * crop.y) / crop.h}%`,
    width: `${(100 * img.naturalWidth) / crop.w}%`, height: `${(100 * img.naturalHeight) / crop.h}%` };
  for (const layer of [$("before-img"), $("after-img")]) Object.assign(layer.style, { ...geometry, height: "auto" });
  Object.assign($("face-boxes").style, geometry);
  for (const [id, view] of [["view-face", "face"], ["view-photo", "photo"]]) {
    $(id).setAttribute("aria-pressed", String(state.view === view));
  }
}

function setView(view) {
  state.view = view;
  layoutView();
}

function setDivider(percent) {
  $("compare").style.setProperty("--cut", `${percent}%`);
  $("divider").setAttribute("aria-valuetext", `${Math.round(percent)}% before, ${Math.round(100 - percent)}% after`);
}

// "Hold to see the original": the result is hidden while the button (or the space bar on it) is held.
function holdOriginal(on) {
  $("compare").classList.toggle("holding", on);
  $("hold").classList.toggle("active", on);
}

function drawFaceBoxes() {
  const img = $("before-img");
  const layer = $("face-boxes");
  layer.replaceChildren();
  const w = img.naturalWidth, h = img.naturalHeight;
  state.faces.forEach((face, i) => {
    const [x, y, bw, bh] = face.box;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "face-box";
    button.dataset.index = face.index;
    button.setAttribute("aria-label", `Edit face ${i + 1} of ${state.faces.length}`);
    Object.assign(button.style, { left: `${(100 * x) / w}%`, top: `${(100 * y) / h}%`,
      width: `${(100 * bw) / w}%`, height: `${(100 * bh) / h}%` });
    button.innerHTML = `<span aria-hidden="true">${i + 1}</span>`;
    button.addEventListener("click", () => selectFace(face.index));
    layer.append(button);
  });
}

function selectFace(index) {
  state.face = index;
  const face = state.faces.find((f) => f.index === index);
  state.measured = {};
  for (const { name } of state.catalog) state.measured[name] = shown(name, face.attributes[name]);
  for (const button of document.querySelectorAll(".face-box")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.index) === index));
  }
  layoutView();
  resetEdit();
}

function resetEdit() {
  cancelEdit();
  setSliders(state.measured);
  showOriginalAsResult();
}

function showOriginalAsResult() {
  $("after-img").src = state.photo.url;
  $("download-result").href = state.photo.url;
  $("download-result").download = state.photo.name;
  $("changes").textContent = "";
}

// ---- editing: debounced, newest request wins ------------------------------------------------------------------
function cancelEdit() {
  clearTimeout(state.timer);
  state.seq += 1;
  if (state.inflight) state.inflight.abort();
  state.inflight = null;
  $("busy").hidden = true;
}

function scheduleEdit() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runEdit, DEBOUNCE_MS);
}

async function runEdit() {
  if (!state.photo) return;
  const changes = edits();
  cancelEdit();
  if (!Object.keys(changes).length) { showOriginalAsResult(); return; }
  const seq = state.seq;
  const controller = new AbortController();
  state.inflight = controller;
  const body = { image_base64: state.photo.base64, edits: changes, face: state.face,
    strength: Number($("strength").value), response: "json" };
  showCurl("v1/edit", body, state.photo.name);
  $("busy").hidden = false;
  const started = performance.now();
  try {
    const result = await api("v1/edit", body, controller.signal);
    if (seq !== state.seq) return;
    clearError();
    const url = objectUrl("result", base64ToBlob(result.image_base64, result.content_type));
    $("after-img").src = url;
    $("download-result").href = url;
    $("download-result").download = `edited.${extension(result.content_type)}`;
    describeChanges(result.faces.find((f) => f.index === state.face) || result.faces[0], changes);
    setStatus(`Edited in ${Math.round(performance.now() - started)} ms.`);
  } catch (err) {
    if (err.name !== "AbortError" && seq === state.seq) showError(err);
  } finally {
    if (seq === state.seq) { $("busy").hidden = true; state.inflight = null; }
  }
}

function describeChanges(face, changes) {
  if (!face) return;
  const parts = Object.keys(changes).map((key) => {
    const name = Object.keys(INVERTED).find((n) => INVERTED[n] === key) || key;
    const before = shown(name, face.attributes_before[name]), after = shown(name, face.attributes_after[name]);
    return `${label(name)} ${Math.round(before * 100)}% → ${Math.round(after * 100)}%`;
  });
  $("changes").textContent = `Measured on the result: ${parts.join(", ")}.`;
}

// ---- animation ------------------------------------------------------------------------------------------------
async function animate(body, name2) {
  clearError();
  const button = $("animate-edit");
  button.disabled = true;
  setStatus("Making the animation…");
  showCurl("v1/interpolate", body, state.photo.name, name2);
  try {
    const result = await api("v1/interpolate", body);
    const url = objectUrl("anim", base64ToBlob(result.image_base64, result.content_type));
    $("anim-img").src = url;
    $("anim-img").alt = name2 ? "Animation from your photo to the second photo" : "Animation from your photo to the edit";
    $("download-anim").href = url;
    $("download-anim").download = `animation.${extension(result.content_type)}`;
    $("anim-figure").hidden = false;
    setStatus(`Animation ready: ${result.frames} frames.`);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function animationSettings() {
  return { frames: Math.min(30, Math.max(2, Number($("frames").value) || 12)), format: $("anim-format").value,
    response: "json" };
}

function animateEdit() {
  const changes = edits();
  if (!Object.keys(changes).length) {
    showMessage("Move at least one slider first: the animation goes from the photo to the edit.");
    return;
  }
  animate({ image_base64: state.photo.base64, start: measuredFor(changes), end: changes, face: state.face,
    strength: Number($("strength").value), ...animationSettings() });
}

async function morphTo(file) {
  if (file.size > MAX_UPLOAD_BYTES) { showError(new ApiError("payload_too_large", "", 413)); return; }
  const image2 = await blobToBase64(file);
  animate({ image_base64: state.photo.base64, image2_base64: image2, ...animationSettings() }, file.name);
}

// ---- sample faces made by the model ---------------------------------------------------------------------------
async function loadSamples() {
  let samples = [];
  try { samples = await (await fetch(apiUrl("static/samples.json"))).json(); } catch (_) { return; }
  for (const sample of samples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = sample.label;
    button.addEventListener("click", async () => {
      clearError();
      setStatus("Generating a face…");
      const body = { seed: sample.seed, attributes: sample.attributes, size: 256, response: "json" };
      try {
        const result = await api("v1/generate", body);
        await loadPhoto(base64ToBlob(result.images_base64[0], result.content_type), `sample-${sample.seed}.png`);
      } catch (err) {
        showError(err);
      }
    });
    $("samples").append(button);
  }
}

// ---- the request as curl --------------------------------------------------------------------------------------
function shellQuote(text) { return `'${String(text).replace(/'/g, "'\\''")}'`; }

function showCurl(path, body, name, name2) {
  // The JSON body exactly as sent, with each image read from its file by a shell substitution.
  const files = { image_base64: name || "photo.jpg", image2_base64: name2 || "photo2.jpg" };
  const placeholders = {};
  const shownBody = { ...body };
  for (const field of Object.keys(files)) {
    if (!(field in body)) continue;
    placeholders[field] = `@@${field}@@`;
    shownBody[field] = placeholders[field];
  }
  let json = JSON.stringify(shownBody).replace(/'/g, "'\\''");
  for (const [field, token] of Object.entries(placeholders)) {
    json = json.replace(`"${token}"`, `"'"$(base64 -w0 ${shellQuote(files[field])})"'"`);
  }
  const lines = [`curl -s ${shellQuote(apiUrl(path))}`, "-H 'Content-Type: application/json'"];
  if (apiKey()) lines.push("-H \"x-api-key: $FACE_API_KEY\"");
  lines.push(`-d '${json}'`);
  $("curl").textContent = lines.join(" \\\n  ");
}

async function copyCurl() {
  const text = $("curl").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  setStatus("Copied the curl command." + (apiKey() ? " Set FACE_API_KEY to your key before running it." : ""));
}

// ---- wiring ---------------------------------------------------------------------------------------------------
function firstImage(files) { return files && files.length ? files[0] : null; }

function setup() {
  const file = $("file");
  file.addEventListener("change", () => { const f = firstImage(file.files); if (f) loadPhoto(f, f.name); file.value = ""; });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const f = firstImage(e.dataTransfer.files);
    if (f) loadPhoto(f, f.name);
  });
  $("reset").addEventListener("click", () => { resetEdit(); setStatus("Back to the photo as it was measured."); });
  $("strength").addEventListener("input", () => {
    $("strength-out").textContent = Number($("strength").value).toFixed(1);
    scheduleEdit();
  });
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("animate-edit").addEventListener("click", animateEdit);
  const morph = $("morph-file");
  morph.addEventListener("change", () => { const f = firstImage(morph.files); if (f) morphTo(f); morph.value = ""; });
  $("copy-curl").addEventListener("click", copyCurl);
  $("view-face").addEventListener("click", () => setView("face"));
  $("view-photo").addEventListener("click", () => setView("photo"));
  const divider = $("divider");
  divider.addEventListener("input", () => setDivider(Number(divider.value)));
  setDivider(Number(divider.value));
  const hold = $("hold");
  hold.addEventListener("pointerdown", (e) => { hold.setPointerCapture(e.pointerId); holdOriginal(true); });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    hold.addEventListener(type, () => holdOriginal(false));
  }
  hold.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); holdOriginal(true); } });
  hold.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") holdOriginal(false); });
  hold.addEventListener("blur", () => holdOriginal(false));
  hold.addEventListener("contextmenu", (e) => e.preventDefault()); // a long press on a phone is a hold, not a menu

  const key = $("api-key"), remember = $("remember-key");
  const stored = localStorage.getItem(KEY_STORE);
  if (stored) { key.value = stored; remember.checked = true; }
  const keep = () => {
    if (remember.checked && apiKey()) localStorage.setItem(KEY_STORE, apiKey());
    else localStorage.removeItem(KEY_STORE);
  };
  key.addEventListener("change", () => { keep(); clearError(); loadCatalog().catch(showError); });
  remember.addEventListener("change", keep);

  loadSamples();
  loadCatalog().catch(showError);
}

document.addEventListener("DOMContentLoaded", setup);
