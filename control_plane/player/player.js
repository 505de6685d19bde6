// The demo player page: plays a title through the manifest API with dash.js, hls.js or Shaka and
// shows, live, which appliance each segment came from, the rendition, the buffer and the steering
// decision. Player-agnostic where it can be: segments are observed through Resource Timing, so the
// page reports what the browser actually fetched, whatever the player library.
"use strict";

const params = new URLSearchParams(location.search);
const titleId = params.get("title") || "";
const playerKind = params.get("player") || "dash";
// Seconds of media to keep buffered ahead (?buffer=N); the reference design's cushion is ~30 s.
const bufferAhead = Math.max(2, Number(params.get("buffer")) || 30);
const state = window.ocaPlayerState = {
  player: playerKind, title: titleId, playing: false, ttffMs: null, errors: [], recovered: [], segments: [],
  renditions: [], currentTime: 0, appliances: {},
};
const $ = (id) => document.getElementById(id);
const t0 = performance.now();

// dash.js ERROR codes of a segment download that failed after its retries (DOWNLOAD_ERROR_ID_CONTENT,
// _INITIALIZATION): dash.js then blacklists that BaseURL's serviceLocation and loads the segment from the
// next appliance, so they are not fatal by themselves (with no BaseURL left it reports 19, an error).
const DASH_RECOVERED = new Set([27, 28]);

function onDashError(e) {
  // Code and message only: the event's error.data holds the request and response, whose references are
  // circular, so JSON.stringify throws, and a listener that throws breaks dash.js (its EventBus does not
  // catch: the failed request never completes, the segment is never retried on the next BaseURL and the
  // video stalls once its buffer runs dry).
  const err = e.error || {};
  const text = "dash.js: " + err.code + " " + err.message;
  if (DASH_RECOVERED.has(err.code)) state.recovered.push(text);
  else fail(text);
}

function fail(message) {
  state.errors.push(String(message));
  $("errors").textContent = state.errors.slice(-3).join("; ");
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src; s.onload = resolve; s.onerror = () => reject(new Error("cannot load " + src));
    document.head.appendChild(s);
  });
}

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || (url + ": HTTP " + r.status));
  return body;
}

function applianceFor(url) {
  for (const [base, a] of Object.entries(state.appliances)) if (url.startsWith(base)) return a;
  return null;
}

function renditionOf(url) {
  const path = new URL(url).pathname;
  return path.slice(path.lastIndexOf("/") + 1);
}

function watchSegments() {
  const seen = new Set();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const a = applianceFor(e.name);
      if (!a || seen.has(e)) continue;
      seen.add(e);
      const seg = {url: e.name.split("?")[0], appliance: a.id, kind: a.kind, rendition: renditionOf(e.name),
                   at: state.currentTime};
      state.segments.push(seg);
      $("appliance").textContent = `${a.id} (${a.kind})`;
      if (/\.(mp4|m4s)$/.test(seg.rendition) && !seg.rendition.includes("aac")) $("rendition").textContent = seg.rendition;
      const row = $("segments").insertRow(1);
      row.insertCell().textContent = a.id;
      row.insertCell().textContent = seg.rendition;
      row.insertCell().textContent = state.currentTime.toFixed(1) + " s";
      while ($("segments").rows.length > 200) $("segments").deleteRow(-1);
    }
  }).observe({type: "resource", buffered: true});
}

function watchVideo(video) {
  video.addEventListener("playing", () => {
    state.playing = true;
    if (state.ttffMs === null) { state.ttffMs = Math.round(performance.now() - t0); $("ttff").textContent = state.ttffMs + " ms"; }
  });
  video.addEventListener("error", () => fail("video element: " + (video.error && video.error.message)));
  setInterval(() => {
    state.currentTime = video.currentTime;
    let ahead = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime && video.currentTime <= video.buffered.end(i)) ahead = video.buffered.end(i) - video.currentTime;
    }
    state.bufferAhead = ahead;
    $("position").textContent = video.currentTime.toFixed(1) + " s";
    $("buffer").textContent = ahead.toFixed(1) + " s";
    $("state").textContent = video.paused ? "paused" : (state.playing ? "playing" : "starting");
  }, 250);
}

async function showSteering() {
  try {
    const answer = await getJSON(`steer?title=${encodeURIComponent(titleId)}`);
    $("client").textContent = answer.client ? `(${answer.client.ip}, via ${answer.client.source})` : "";
    const table = $("steering");
    while (table.rows.length > 1) table.deleteRow(-1);
    for (const c of answer.candidates || []) {
      const row = table.insertRow();
      row.insertCell().textContent = c.rank;
      row.insertCell().innerHTML = `${c.appliance_id} <span class="kind">${c.kind}</span>`;
      row.insertCell().textContent = c.reason;
      row.insertCell().textContent = c.load_ratio != null ? (100 * c.load_ratio).toFixed(1) + "%" : "";
    }
    state.steering = answer;
  } catch (e) { $("client").textContent = "(steering: " + e.message + ")"; }
}

async function start() {
  $("player-select").value = playerKind;
  $("reload").onclick = () => { params.set("player", $("player-select").value); location.search = params.toString(); };
  const info = await getJSON(`info?title=${encodeURIComponent(titleId)}`);
  $("title-name").textContent = info.title ? info.title.name || titleId : titleId;
  for (const a of info.appliances) state.appliances[a.base_url.replace(/\/$/, "") + "/"] = a;
  watchSegments();
  showSteering();
  setInterval(showSteering, 5000);
  const format = playerKind === "hls" ? "hls" : "dash";
  const manifest = `${location.origin}/api/v1/playback/${encodeURIComponent(titleId)}/manifest?format=${format}`;
  $("manifest-link").href = manifest; $("manifest-link").textContent = manifest;
  const video = $("video");
  watchVideo(video);
  if (playerKind === "dash") {
    await loadScript("lib/dash.all.min.js");
    const player = dashjs.MediaPlayer().create();
    // Recommended (docs/ingest-and-playback.md): short retries, so a dead appliance costs little;
    // the manifest's <ContentSteering> then moves dash.js to the next appliance.
    player.updateSettings({streaming: {
      buffer: {bufferTimeAtTopQuality: bufferAhead, bufferTimeAtTopQualityLongForm: bufferAhead,
               bufferTimeDefault: Math.min(12, bufferAhead)},
      retryAttempts: {MPD: 3, MediaSegment: 3, InitializationSegment: 3, IndexSegment: 3},
      retryIntervals: {MPD: 500, MediaSegment: 250, InitializationSegment: 250, IndexSegment: 250}}});
    player.on(dashjs.MediaPlayer.events.ERROR, onDashError);
    player.initialize(video, manifest, true);
  } else if (playerKind === "hls") {
    await loadScript("lib/hls.min.js");
    const hls = new Hls({maxBufferLength: bufferAhead, maxMaxBufferLength: bufferAhead, fragLoadPolicy: {default: {maxTimeToFirstByteMs: 4000, maxLoadTimeMs: 20000,
      timeoutRetry: {maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0},
      errorRetry: {maxNumRetry: 3, retryDelayMs: 250, maxRetryDelayMs: 2000}}}});
    hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) fail("hls.js: " + d.details); });
    hls.loadSource(manifest);
    hls.attachMedia(video);
    video.play().catch(() => {});
  } else {
    await loadScript("lib/shaka-player.compiled.js");
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    await player.attach(video);
    // Recommended for a multi-appliance CDN (docs/ingest-and-playback.md): keep retrying, so a
    // dead appliance makes Shaka move to the next BaseURL instead of giving up.
    player.configure({streaming: {bufferingGoal: bufferAhead, retryParameters: {maxAttempts: 6, baseDelay: 250, backoffFactor: 1.5, timeout: 8000}},
                      manifest: {retryParameters: {maxAttempts: 4, baseDelay: 250}}});
    player.addEventListener("error", (e) => fail("shaka: " + (e.detail && e.detail.code)));
    await player.load(manifest);
    video.play().catch(() => {});
  }
}

start().catch((e) => fail(e.message || e));
