// The demo player: lists what the token's user may play, plays a track with
// <audio> through its signed URL (seeking works: the store answers Range),
// plays a movie with hls.js through the signed manifest, reports progress
// every 10 s, resumes where it stopped, and stops the session on page hide.
"use strict";

// Progress every 10 s; `?progress_every_ms=N` (at least 500) changes it, for tests.
const PROGRESS_EVERY_MS = Math.max(500, Number(new URLSearchParams(location.search).get("progress_every_ms")) || 10_000);
const $ = (id) => document.getElementById(id);
const audio = $("audio");
const video = $("video");

let token = "";
// What plays now: { item, session?, sequence, timer?, hls? }.
let current = null;

// Plain words for a status when the problem document says nothing better.
const PLAIN = {
  400: "The request was not understood.",
  401: "Your token was refused: check it, or get a new one.",
  403: "You are not allowed to play this.",
  404: "It does not exist (any more).",
  409: "It cannot be played right now.",
  413: "The request was too large.",
  422: "The request had an invalid value.",
  429: "Too many requests: wait a moment and try again.",
  503: "A service it depends on is down: try again in a few seconds.",
};

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function setStatus(text) {
  $("status").textContent = text;
}

// The sentence to show for a failed answer: the problem document's detail.
async function problemMessage(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    // Not JSON: fall back to the status.
  }
  if (problem && typeof problem.detail === "string" && problem.detail) {
    return problem.detail;
  }
  if (problem && typeof problem.title === "string" && problem.title) {
    return problem.title;
  }
  return PLAIN[response.status] || `The service answered ${response.status}.`;
}

async function api(method, path, body, keepalive = false) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive,
    });
  } catch {
    throw new Error("The service cannot be reached.");
  }
  if (!response.ok) {
    throw new Error(await problemMessage(response));
  }
  return response.json();
}

function describe(item) {
  const kind = item.kind === "movie" ? "Movie" : "Track";
  const length = item.duration_seconds == null ? "" : ` · ${Math.round(item.duration_seconds)} s`;
  const whose = item.owned ? " · yours" : ` · ${item.visibility}`;
  return `${kind}${length}${whose}`;
}

async function loadMedia() {
  clearError();
  const items = [];
  let after = null;
  do {
    const query = after ? `?limit=100&after=${encodeURIComponent(after)}` : "?limit=100";
    const page = await api("GET", `/api/v1/media${query}`);
    items.push(...page.items);
    after = page.next;
  } while (after);
  const list = $("media-list");
  list.replaceChildren();
  for (const item of items) {
    const row = document.createElement("li");
    row.dataset.id = item.id;
    row.dataset.kind = item.kind;
    const label = document.createElement("span");
    const name = document.createElement("strong");
    name.textContent = describe(item);
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = ` ${item.id}`;
    label.append(name, id);
    const play = document.createElement("button");
    play.type = "button";
    if (item.status === "Ready") {
      play.textContent = "Play";
      play.addEventListener("click", () => playItem(item));
    } else {
      play.textContent = item.status;
      play.disabled = true;
    }
    row.append(label, play);
    list.append(row);
  }
  $("media").hidden = false;
  if (items.length === 0) {
    showError("There is nothing you may play yet.");
  }
}

async function playItem(item) {
  clearError();
  try {
    await stopCurrent();
    $("player").hidden = false;
    $("now-playing").textContent = describe(item);
    if (item.kind === "movie") {
      await playMovie(item);
    } else {
      await playTrack(item);
    }
  } catch (error) {
    showError(error.message);
  }
}

async function playTrack(item) {
  const answer = await api("POST", item.play);
  current = { item, sequence: 0 };
  video.hidden = true;
  audio.hidden = false;
  audio.src = answer.streamUrl;
  setStatus("Playing from a signed URL; seek freely.");
  await startPlaying(audio);
}

async function playMovie(item) {
  const started = await api("POST", item.play, { manifest_type: "hls" });
  current = { item, session: started.session_id, sequence: 0 };
  audio.hidden = true;
  video.hidden = false;
  const resume = started.resume_position_seconds || 0;
  video.addEventListener(
    "loadedmetadata",
    () => {
      if (resume > 0 && resume < video.duration) {
        video.currentTime = resume;
      }
    },
    { once: true },
  );
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls();
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) {
        showError(`The video could not be loaded (${data.details}).`);
      }
    });
    hls.loadSource(started.manifest_url);
    hls.attachMedia(video);
    current.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = started.manifest_url;
  } else {
    throw new Error("This browser cannot play HLS video.");
  }
  setStatus(resume > 0 ? `Resuming at ${resume} s.` : "Playing from the start.");
  current.timer = setInterval(() => reportProgress(false), PROGRESS_EVERY_MS);
  await startPlaying(video);
}

async function startPlaying(element) {
  try {
    await element.play();
  } catch {
    setStatus("Press play to start.");
  }
}

function position() {
  const seconds = video.currentTime;
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

function reportProgress(keepalive) {
  if (!current || !current.session) {
    return Promise.resolve();
  }
  current.sequence += 1;
  const body = { position_seconds: position(), session_id: current.session, sequence: current.sequence };
  return api("POST", `${current.item.play}/progress`, body, keepalive).catch((error) => showError(error.message));
}

// Ends what plays: a movie's session is stopped at its position.
async function stopCurrent(keepalive = false) {
  const playing = current;
  current = null;
  if (!playing) {
    return;
  }
  if (playing.timer) {
    clearInterval(playing.timer);
  }
  if (playing.session) {
    const body = { position_seconds: position(), session_id: playing.session };
    const stop = api("POST", `${playing.item.play}/stop`, body, keepalive).catch((error) => showError(error.message));
    if (!keepalive) {
      await stop;
    }
  }
  if (playing.hls) {
    playing.hls.destroy();
  }
  audio.pause();
  video.pause();
  audio.removeAttribute("src");
  video.removeAttribute("src");
}

video.addEventListener("pause", () => {
  if (!video.ended) {
    reportProgress(false);
  }
});
video.addEventListener("seeked", () => reportProgress(false));
video.addEventListener("ended", () => reportProgress(false));
// Leaving or reloading the page stops the session; the request outlives the page.
window.addEventListener("pagehide", () => {
  stopCurrent(true);
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("streamgate-token", token);
  try {
    await loadMedia();
  } catch (error) {
    showError(error.message);
  }
});

// A token: the demo's (embedded mode fills it in), else this tab's last one.
const initial = document.body.dataset.demoToken || sessionStorage.getItem("streamgate-token") || "";
$("token").value = initial;
if (initial) {
  $("token-form").requestSubmit();
}
