// The /ui page: submit a text, follow its progress, play it, highlight the word being spoken.
// No framework, no build step. Untrusted strings only ever go in through textContent.
"use strict";

const KEY_STORAGE = "tts.apiKey";
const POLL_FIRST_MS = 300;
const POLL_MAX_MS = 2000;
const LIST_LIMIT = 10;

const $ = (id) => document.getElementById(id);
// Relative to the page, so that an API Gateway stage prefix (/prod/ui -> /prod/api/v1/...) is kept.
const apiUrl = (path) => new URL(`api/v1/${path}`, document.baseURI).toString();

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const state = { key: "", formats: new Map(), polling: null, marks: [], spans: [], frame: 0 };

function apiKey() {
  return state.key;
}

async function call(path, options = {}) {
  const headers = { accept: "application/json", ...(options.headers || {}) };
  if (apiKey()) headers["x-api-key"] = apiKey();
  const response = await fetch(apiUrl(path), { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    const message = error.message || (body && body.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, error.code || "http_error", message);
  }
  return body;
}

function showError(error) {
  if (!error) {
    $("error").textContent = "";
    return;
  }
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    $("error").textContent = `The API refused the key: ${error.message}. Enter a valid key above.`;
    $("key").focus();
    return;
  }
  $("error").textContent = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
}

// -- The key: typed once, kept in this browser ------------------------------------------------------------

function loadKey() {
  state.key = window.localStorage.getItem(KEY_STORAGE) || "";
  renderKeyState();
}

function renderKeyState() {
  $("key").value = "";
  $("key").placeholder = state.key ? "•••••••• (saved)" : "tts_…";
  $("key-state").textContent = state.key
    ? "A key is saved in this browser; it is sent with every request to this API only."
    : "Enter your API key to start (the local stack prints one when it starts).";
  $("key-forget").disabled = !state.key;
  $("submit").disabled = !state.key;
}

function saveKey(event) {
  event.preventDefault();
  const typed = $("key").value.trim();
  if (!typed) return;
  state.key = typed;
  window.localStorage.setItem(KEY_STORAGE, typed);
  renderKeyState();
  showError(null);
  loadService();
}

function forgetKey() {
  state.key = "";
  window.localStorage.removeItem(KEY_STORAGE);
  renderKeyState();
  renderTasks([]);
}

// -- Voices: what this deployment serves --------------------------------------------------------------------

function option(value, label, selected) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  element.selected = selected;
  return element;
}

async function loadVoices() {
  const voices = await call("voices");
  const language = $("language");
  language.replaceChildren(
    ...voices.languages.map((v) => option(v.code, `${v.name} (${v.code})`, v.code === voices.default_language))
  );
  const format = $("format");
  format.replaceChildren(
    ...voices.formats.map((f) => option(f.format, f.format, f.format === voices.default_format))
  );
  for (const f of voices.formats) state.formats.set(f.format, f);
  const speed = $("speed");
  speed.min = voices.speed_min;
  speed.max = voices.speed_max;
  speed.value = voices.default_speed;
}

// -- Submit and follow one task -----------------------------------------------------------------------------

async function submit(event) {
  event.preventDefault();
  showError(null);
  const text = $("text").value;
  const body = { text, language: $("language").value, format: $("format").value, speed: Number($("speed").value) };
  $("submit").disabled = true;
  try {
    const accepted = await call("tts/convert", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    follow(accepted.conversion_id, text);
    refreshTasks();
  } catch (error) {
    showError(error);
  } finally {
    $("submit").disabled = !state.key;
  }
}

function stopPolling() {
  if (state.polling) window.clearTimeout(state.polling);
  state.polling = null;
}

function renderProgress(task) {
  const status = $("status");
  status.textContent = task.status;
  status.className = `status status-${task.status}`;
  const progress = $("progress");
  const pieces = task.progress;
  if (task.status === "done") {
    progress.max = 1;
    progress.value = 1;
  } else if (pieces && pieces.pieces_total) {
    progress.max = pieces.pieces_total;
    progress.value = pieces.pieces_done;
  } else {
    progress.removeAttribute("value"); // indeterminate until the worker knows the number of pieces
  }
  const parts = [];
  if (pieces && pieces.pieces_total) parts.push(`${pieces.pieces_done} of ${pieces.pieces_total} pieces`);
  if (task.duration_s != null) parts.push(`${task.duration_s.toFixed(2)} s of audio`);
  if (task.error) parts.push(`${task.error.message} (${task.error.code})`);
  $("progress-text").textContent = parts.join(" · ");
}

function follow(taskId, text) {
  stopPolling();
  resetPlayer();
  $("current").hidden = false;
  $("task-id").textContent = taskId;
  let delay = POLL_FIRST_MS;
  const poll = async () => {
    try {
      const task = await call(`tts/${encodeURIComponent(taskId)}`);
      renderProgress(task);
      if (task.status === "done") {
        state.polling = null;
        await play(task, text);
        refreshTasks();
        return;
      }
      if (task.status === "failed") {
        state.polling = null;
        refreshTasks();
        return;
      }
    } catch (error) {
      showError(error);
    }
    delay = Math.min(delay * 1.5, POLL_MAX_MS);
    state.polling = window.setTimeout(poll, delay);
  };
  poll();
}

// -- Play, and highlight the word being spoken ------------------------------------------------------------

function resetPlayer() {
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  $("download-link").hidden = true;
  $("transcript").replaceChildren();
  state.marks = [];
  state.spans = [];
}

async function play(task, text) {
  const link = await call(`tts/${encodeURIComponent(task.conversion_id)}/download`);
  const download = $("download-link");
  download.href = link.url;
  download.textContent = `Download ${link.filename}`;
  download.hidden = false;
  const facts = state.formats.get(task.format);
  const player = $("player");
  if (facts && !player.canPlayType(facts.content_type)) {
    $("progress-text").textContent += ` · ${task.format} does not play in a browser: download it`;
  } else {
    player.src = link.url;
    player.load();
  }
  if ((task.marks || []).includes("json")) await loadMarks(task.conversion_id, text);
}

async function loadMarks(taskId, text) {
  // The task lists its marks; without them the audio plays without highlighting.
  const link = await call(`tts/${encodeURIComponent(taskId)}/marks?format=json`);
  const response = await fetch(link.url); // the presigned URL: no key goes to the bucket
  if (!response.ok) throw new Error(`the speech marks could not be fetched (${response.status})`);
  const lines = (await response.text()).split("\n").filter((line) => line.trim());
  const words = lines.map((line) => JSON.parse(line)).filter((mark) => mark.type === "word");
  renderTranscript(words, text);
}

// Marks hold byte offsets into the task's UTF-8 text (as Polly's do). Where they fit the text we have, the
// whole text is shown with each word in a span; otherwise (a task from the list) the words alone.
function renderTranscript(words, text) {
  const transcript = $("transcript");
  const spans = [];
  // The task's text is the submitted one after NFC and whitespace collapsing.
  const candidates = text ? [text.normalize("NFC").trim().replace(/\s+/g, " "), text] : [];
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const fitting = candidates
    .map((candidate) => encoder.encode(candidate))
    .find((bytes) => words.every((w) => decoder.decode(bytes.slice(w.start, w.end)) === w.value));
  const nodes = [];
  let at = 0;
  for (const word of words) {
    if (fitting) {
      if (word.start > at) nodes.push(document.createTextNode(decoder.decode(fitting.slice(at, word.start))));
      at = Math.max(at, word.end);
    } else if (nodes.length) {
      nodes.push(document.createTextNode(" "));
    }
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = word.value;
    nodes.push(span);
    spans.push(span);
  }
  if (fitting && at < fitting.length) nodes.push(document.createTextNode(decoder.decode(fitting.slice(at))));
  transcript.replaceChildren(...nodes);
  state.marks = words;
  state.spans = spans;
}

function currentWord(ms) {
  // The last word that has started by `ms` (marks are in time order).
  let low = 0;
  let high = state.marks.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (state.marks[middle].time <= ms) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

function highlight() {
  const index = currentWord($("player").currentTime * 1000);
  state.spans.forEach((span, i) => span.classList.toggle("current", i === index));
}

function animate() {
  highlight();
  if (!$("player").paused) state.frame = window.requestAnimationFrame(animate);
}

// -- Recent tasks of this key -----------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderTasks(items) {
  const rows = items.map((task) => {
    const tr = document.createElement("tr");
    tr.dataset.id = task.conversion_id;
    const pieces = task.progress ? `${task.progress.pieces_done}/${task.progress.pieces_total}` : "";
    tr.append(
      cell(task.conversion_id.slice(0, 12), "mono"),
      cell(task.status, `status status-${task.status}`),
      cell(pieces),
      cell(`${task.language} · ${task.format} · ${task.speed}×`),
      cell(task.duration_s != null ? `${task.duration_s.toFixed(1)} s` : ""),
      cell(new Date(task.submitted_at).toLocaleString()),
    );
    const actions = document.createElement("td");
    if (task.status === "done") {
      const listen = document.createElement("button");
      listen.type = "button";
      listen.className = "secondary";
      listen.textContent = "Play";
      listen.addEventListener("click", () => follow(task.conversion_id, ""));
      const save = document.createElement("button");
      save.type = "button";
      save.className = "secondary";
      save.textContent = "Download";
      save.addEventListener("click", () => downloadTask(task.conversion_id));
      actions.append(listen, " ", save);
    }
    tr.append(actions);
    return tr;
  });
  $("tasks").tBodies[0].replaceChildren(...rows);
  $("tasks-empty").hidden = items.length > 0;
}

async function downloadTask(taskId) {
  try {
    const link = await call(`tts/${encodeURIComponent(taskId)}/download`);
    window.location.assign(link.url); // the presigned URL answers with Content-Disposition: attachment
  } catch (error) {
    showError(error);
  }
}

async function refreshTasks() {
  try {
    const page = await call(`tts?limit=${LIST_LIMIT}`);
    renderTasks(page.items);
  } catch (error) {
    showError(error);
  }
}

// -- Start ---------------------------------------------------------------------------------------------------

function start() {
  loadKey();
  $("key-form").addEventListener("submit", saveKey);
  $("key-forget").addEventListener("click", forgetKey);
  $("speak-form").addEventListener("submit", submit);
  $("refresh").addEventListener("click", refreshTasks);
  const player = $("player");
  player.addEventListener("play", animate);
  player.addEventListener("seeked", highlight);
  player.addEventListener("timeupdate", highlight);
  if (state.key) loadService();
}

// Every API call needs the key (on AWS the gateway refuses any request without one).
function loadService() {
  loadVoices().catch(showError);
  refreshTasks();
}

document.addEventListener("DOMContentLoaded", start);
