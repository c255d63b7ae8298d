// mocap-lift viewer: a finished job's 3D skeleton on a 2D canvas, in sync with its overlay video.
//
// Data: GET ../v1/jobs/{id}/skeleton (JSON: fps, joint_names, parents, frames, positions
// T x J x 3 metres, +Y up, null where missing, has_overlay) and ../v1/jobs/{id}/overlay
// (mp4, played from a blob URL). Both need the API key in the X-API-Key header; the key comes
// from the URL fragment #key=... (never sent to the server) or from a small form, and is kept
// in sessionStorage. No library, no build step.
"use strict";

(() => {
  const COLOURS = ["rgb(226,230,238)", "rgb(255,140,20)", "rgb(40,130,255)"]; // centre, left, right
  const SHADOW = "rgba(0,0,0,0.38)";
  const FOV = (40 * Math.PI) / 180; // vertical field of view of the virtual camera
  const BONE_M = 0.035; // drawn bone thickness, metres
  const NEAR = 0.05; // near clipping plane, metres
  const KEY_STORE = "mocap-lift-key";
  const RETRY_S = 5;

  const $ = (id) => document.getElementById(id);
  const el = {
    canvas: $("stage"), hud: $("hud"), job: $("job"), play: $("play"), slider: $("slider"),
    clock: $("clock"), reset: $("resetView"), video: $("video"), videoPanel: $("videoPanel"),
    videoNote: $("videoNote"), message: $("message"), messageTitle: $("messageTitle"),
    messageText: $("messageText"), keyForm: $("keyForm"), keyInput: $("keyInput"),
  };
  const ctx = el.canvas.getContext("2d");

  const jobId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const apiUrl = (what) => new URL(`../v1/jobs/${encodeURIComponent(jobId)}/${what}`, location.href);

  const state = {
    data: null, // the skeleton JSON plus derived tables (bones, sides, scene)
    frame: 0,
    playing: false,
    clock: 0, // seconds, the time base when there is no playable video
    lastTick: null,
    videoReady: false,
    dirty: true,
    cam: { yaw: 0, pitch: 0, dist: 3, target: [0, 1, 0] },
    home: null,
  };

  // ---------------------------------------------------------------- key and messages
  function storedKey() {
    try { return sessionStorage.getItem(KEY_STORE); } catch (e) { return null; }
  }
  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
    } catch (e) { /* storage disabled: the key lives only as long as the page */ }
  }
  function keyFromFragment() {
    const key = new URLSearchParams(location.hash.slice(1)).get("key");
    if (key) {
      storeKey(key);
      history.replaceState(null, "", location.pathname + location.search); // keep it out of history
    }
    return key;
  }

  function showMessage(title, text, askKey) {
    el.messageTitle.textContent = title;
    el.messageText.textContent = text;
    el.keyForm.classList.toggle("hidden", !askKey);
    el.message.classList.remove("hidden");
    if (askKey) el.keyInput.focus();
  }
  function hideMessage() { el.message.classList.add("hidden"); }

  function fail(status, message) {
    const text = /[.!?]$/.test(message) ? message : `${message}.`;
    document.title = `viewer: error (${status || "network"})`;
    document.body.dataset.state = "error";
    if (status === 401 || status === 403) {
      storeKey(null);
      showMessage(status === 401 ? "API key needed" : "Key not accepted", `${text} Enter a key that can read job ${jobId}.`, true);
    } else if (status === 409) {
      showMessage("Job not finished yet", `${text} This page will try again in ${RETRY_S} s.`, false);
      setTimeout(load, RETRY_S * 1000);
    } else if (status === 404) {
      showMessage("Job not found", text, false);
    } else if (status === 429) {
      showMessage("Too many requests", `${text} Reload the page in a moment.`, false);
    } else {
      showMessage("Could not load the job", text, false);
    }
  }

  async function apiFetch(what, key) {
    const response = await fetch(apiUrl(what), { headers: { "X-API-Key": key }, cache: "no-store" });
    if (!response.ok) {
      let text = response.statusText || "request failed";
      try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
      const err = new Error(text);
      err.status = response.status;
      throw err;
    }
    return response;
  }

  // ---------------------------------------------------------------- loading
  async function load() {
    const key = storedKey();
    if (!key) {
      document.title = "viewer: key needed";
      showMessage("API key needed", `Enter the API key that submitted job ${jobId}.`, true);
      return;
    }
    document.body.dataset.state = "loading";
    let data;
    try {
      data = await (await apiFetch("skeleton", key)).json();
    } catch (e) {
      fail(e.status, e.message || "the server could not be reached");
      return;
    }
    hideMessage();
    setData(data);
    if (data.has_overlay) loadVideo(key); else document.body.dataset.video = "none";
  }

  async function loadVideo(key) {
    el.videoPanel.classList.remove("hidden");
    note("loading the overlay video\u2026");
    document.body.dataset.video = "fetching";
    let blob;
    try {
      blob = await (await apiFetch("overlay", key)).blob();
    } catch (e) {
      note(`The overlay video could not be loaded: ${e.message}`);
      document.body.dataset.video = "error";
      return;
    }
    document.body.dataset.video = "decoding";
    const url = URL.createObjectURL(blob);
    el.video.addEventListener("loadeddata", () => {
      note(null);
      state.videoReady = true;
      document.body.dataset.video = "ready";
      el.video.currentTime = state.clock;
      if (state.playing) el.video.play().catch(() => { state.playing = false; });
    }, { once: true });
    el.video.addEventListener("error", () => {
      state.videoReady = false;
      document.body.dataset.video = "unsupported";
      note("This browser cannot play the overlay video (its codec is not supported); the skeleton plays on its own.", url);
    }, { once: true });
    el.video.src = url;
  }

  function note(text, downloadUrl) {
    el.videoNote.replaceChildren();
    el.videoNote.classList.toggle("hidden", !text);
    if (!text) return;
    el.videoNote.append(text);
    if (downloadUrl) {
      const a = document.createElement("a");
      a.href = downloadUrl;
      a.download = `${jobId}-overlay.mp4`;
      a.textContent = "Download overlay.mp4";
      el.videoNote.append(document.createElement("br"), a);
    }
  }

  // ---------------------------------------------------------------- scene set-up
  function sideOf(name) {
    if (name.startsWith("left_") || name.endsWith("_left")) return 1;
    if (name.startsWith("right_") || name.endsWith("_right")) return 2;
    return 0;
  }

  function setData(data) {
    const sides = data.joint_names.map(sideOf);
    const bones = [];
    data.parents.forEach((p, j) => {
      if (p < 0) return;
      const s = new Set([sides[p], sides[j]]);
      const side = s.has(1) && !s.has(2) ? 1 : s.has(2) && !s.has(1) ? 2 : 0;
      bones.push([p, j, side]);
    });
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (const frame of data.positions) for (const p of frame) {
      if (!p || p[0] === null || p[1] === null || p[2] === null) continue;
      for (let i = 0; i < 3; i++) { lo[i] = Math.min(lo[i], p[i]); hi[i] = Math.max(hi[i], p[i]); }
    }
    if (!isFinite(lo[0])) { lo.splice(0, 3, -0.5, 0, -0.5); hi.splice(0, 3, 0.5, 1.7, 0.5); }
    const centre = [0, 1, 2].map((i) => (lo[i] + hi[i]) / 2);
    const radius = Math.max(0.9, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
    const step = 0.5;
    const grid = {
      y: lo[1], step,
      x0: Math.floor((lo[0] - 1) / step) * step, x1: Math.ceil((hi[0] + 1) / step) * step,
      z0: Math.floor((lo[2] - 1) / step) * step, z1: Math.ceil((hi[2] + 1) / step) * step,
    };
    const root = data.parents.indexOf(-1);
    const head = data.joint_names.indexOf("head");
    state.data = { ...data, sides, bones, grid, root, head };
    state.home = { yaw: 0.45, pitch: 0.2, dist: (radius / Math.tan(FOV / 2)) * 1.1, target: centre };
    resetView();

    el.job.textContent = `job ${jobId}`;
    el.hud.textContent = `${data.frames} frames \u00b7 ${data.fps.toFixed(data.fps % 1 ? 2 : 0)} fps \u00b7 ${data.joint_names.length} joints`;
    el.slider.max = String(data.frames - 1);
    el.slider.disabled = el.play.disabled = false;
    document.title = `viewer: ok (${data.frames} frames)`;
    document.body.dataset.state = "ok";
    document.body.dataset.frame = "0";
    state.playing = data.frames > 1;
    draw();
  }

  function resetView() {
    if (!state.home) return;
    state.cam = { ...state.home, target: state.home.target.slice() };
    state.dirty = true;
  }

  // ---------------------------------------------------------------- camera and projection
  function cameraBasis(w, h) {
    const { yaw, pitch, dist, target } = state.cam;
    const back = [Math.cos(pitch) * Math.sin(yaw), Math.sin(pitch), Math.cos(pitch) * Math.cos(yaw)];
    const eye = target.map((t, i) => t + dist * back[i]);
    const fwd = back.map((v) => -v);
    const right = [Math.cos(yaw), 0, -Math.sin(yaw)]; // fwd x (0, 1, 0), normalised
    const up = [ // right x fwd
      right[1] * fwd[2] - right[2] * fwd[1],
      right[2] * fwd[0] - right[0] * fwd[2],
      right[0] * fwd[1] - right[1] * fwd[0],
    ];
    const focal = (0.5 * h) / Math.tan(FOV / 2);
    return { eye, fwd, right, up, focal, cx: w / 2, cy: h / 2 };
  }

  // World point -> camera coordinates [x right, y up, z depth] (metres).
  function toCamera(cam, p) {
    const d = [p[0] - cam.eye[0], p[1] - cam.eye[1], p[2] - cam.eye[2]];
    const dot = (a) => a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
    return [dot(cam.right), dot(cam.up), dot(cam.fwd)];
  }
  const toScreen = (cam, c) => [cam.cx + (cam.focal * c[0]) / c[2], cam.cy - (cam.focal * c[1]) / c[2]];

  // Screen segment of world segment a-b, clipped at the near plane; null if all behind it.
  function segment(cam, a, b) {
    let ca = toCamera(cam, a), cb = toCamera(cam, b);
    if (ca[2] < NEAR && cb[2] < NEAR) return null;
    if (ca[2] < NEAR || cb[2] < NEAR) {
      const t = (NEAR - ca[2]) / (cb[2] - ca[2]);
      const cut = ca.map((v, i) => v + t * (cb[i] - v));
      if (ca[2] < NEAR) ca = cut; else cb = cut;
    }
    return { a: toScreen(cam, ca), b: toScreen(cam, cb), depth: (ca[2] + cb[2]) / 2 };
  }

  const valid = (p) => p && p[0] !== null && p[1] !== null && p[2] !== null;

  // ---------------------------------------------------------------- drawing
  function draw() {
    state.dirty = false;
    const dpr = window.devicePixelRatio || 1;
    const w = el.canvas.clientWidth, h = el.canvas.clientHeight;
    if (el.canvas.width !== Math.round(w * dpr) || el.canvas.height !== Math.round(h * dpr)) {
      el.canvas.width = Math.round(w * dpr);
      el.canvas.height = Math.round(h * dpr);
      const r = el.canvas.getBoundingClientRect(); // where the canvas is, for tests and tools
      document.body.dataset.canvasRect = [r.left, r.top, r.width, r.height].map(Math.round).join(",");
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const d = state.data;
    if (!d || w === 0 || h === 0) return;
    const cam = cameraBasis(w, h);
    drawGrid(cam, d.grid);
    const pose = d.positions[state.frame];
    drawTrail(cam, d);
    drawShadow(cam, d, pose);
    drawSkeleton(cam, d, pose);
  }

  function line(s, colour, width) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(s.a[0], s.a[1]);
    ctx.lineTo(s.b[0], s.b[1]);
    ctx.stroke();
  }

  function drawGrid(cam, g) {
    ctx.lineCap = "butt";
    const n = Math.round((g.x1 - g.x0) / g.step), m = Math.round((g.z1 - g.z0) / g.step);
    for (let i = 0; i <= n; i++) {
      const x = g.x0 + i * g.step;
      const s = segment(cam, [x, g.y, g.z0], [x, g.y, g.z1]);
      const major = Math.abs(x - Math.round(x)) < 1e-6;
      if (s) line(s, Math.abs(x) < 1e-6 ? "rgba(255,110,110,0.45)" : major ? "rgba(255,255,255,0.16)" : "rgba(255,255,255,0.07)", 1);
    }
    for (let k = 0; k <= m; k++) {
      const z = g.z0 + k * g.step;
      const s = segment(cam, [g.x0, g.y, z], [g.x1, g.y, z]);
      const major = Math.abs(z - Math.round(z)) < 1e-6;
      if (s) line(s, Math.abs(z) < 1e-6 ? "rgba(110,160,255,0.45)" : major ? "rgba(255,255,255,0.16)" : "rgba(255,255,255,0.07)", 1);
    }
  }

  function drawTrail(cam, d) {
    if (d.root < 0) return;
    ctx.lineCap = "round";
    for (let t = 1; t <= state.frame; t++) {
      const a = d.positions[t - 1][d.root], b = d.positions[t][d.root];
      if (!valid(a) || !valid(b)) continue;
      const s = segment(cam, [a[0], d.grid.y, a[2]], [b[0], d.grid.y, b[2]]);
      if (s) line(s, "rgba(255,255,255,0.22)", 2);
    }
  }

  function drawShadow(cam, d, pose) {
    // One path, stroked once: overlapping bones do not darken each other.
    ctx.beginPath();
    let depth = 0, count = 0;
    for (const [p, j] of d.bones) {
      if (!valid(pose[p]) || !valid(pose[j])) continue;
      const s = segment(cam, [pose[p][0], d.grid.y, pose[p][2]], [pose[j][0], d.grid.y, pose[j][2]]);
      if (!s) continue;
      ctx.moveTo(s.a[0], s.a[1]);
      ctx.lineTo(s.b[0], s.b[1]);
      depth += s.depth;
      count += 1;
    }
    if (!count) return;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.strokeStyle = SHADOW;
    ctx.lineWidth = Math.max(2, (cam.focal * BONE_M * 1.2) / (depth / count));
    ctx.stroke();
  }

  function drawSkeleton(cam, d, pose) {
    const items = [];
    for (const [p, j, side] of d.bones) {
      if (!valid(pose[p]) || !valid(pose[j])) continue;
      const s = segment(cam, pose[p], pose[j]);
      if (s) items.push({ s, side, joint: j });
    }
    if (!items.length) return;
    const depths = items.map((it) => it.s.depth);
    const near = Math.min(...depths), far = Math.max(...depths);
    items.sort((x, y) => y.s.depth - x.s.depth); // far bones first
    ctx.lineCap = "round";
    for (const { s, side, joint } of items) {
      ctx.globalAlpha = 1 - (0.4 * (s.depth - near)) / Math.max(far - near, 1e-6);
      const width = Math.min(16, Math.max(2, (cam.focal * BONE_M) / s.depth));
      line(s, "rgba(10,12,16,0.55)", width + 3); // dark outline
      line(s, COLOURS[side], width);
      ctx.fillStyle = COLOURS[d.sides[joint]];
      ctx.beginPath();
      ctx.arc(s.b[0], s.b[1], width * 0.62, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (d.head >= 0 && valid(pose[d.head])) {
      const c = toCamera(cam, pose[d.head]);
      if (c[2] > NEAR) {
        const [x, y] = toScreen(cam, c);
        ctx.strokeStyle = COLOURS[0];
        ctx.fillStyle = "rgba(226,230,238,0.12)";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(x, y, (cam.focal * 0.1) / c[2], 0, 2 * Math.PI);
        ctx.fill();
        ctx.stroke();
      }
    }
  }

  // ---------------------------------------------------------------- playback
  function setFrame(f) {
    const d = state.data;
    const frame = Math.max(0, Math.min(d.frames - 1, f));
    if (frame !== state.frame) {
      state.frame = frame;
      state.dirty = true;
      document.body.dataset.frame = String(frame);
    }
  }

  function seek(frame) {
    const t = (frame + 0.25) / state.data.fps; // a quarter frame in: rounding never lands on frame - 1
    state.clock = t;
    if (state.videoReady) el.video.currentTime = t;
    setFrame(frame);
  }

  function togglePlay() {
    if (!state.data) return;
    state.playing = !state.playing;
    if (state.videoReady) {
      if (state.playing) el.video.play().catch(() => { state.playing = false; });
      else el.video.pause();
    }
  }

  function tick(now) {
    const d = state.data;
    if (d) {
      const dt = state.lastTick === null ? 0 : (now - state.lastTick) / 1000;
      if (state.videoReady) {
        state.clock = el.video.currentTime; // the video is the clock: the skeleton follows it
        state.playing = !el.video.paused;
      } else if (state.playing) {
        state.clock = (state.clock + dt) % (d.frames / d.fps);
      }
      setFrame(Math.floor(state.clock * d.fps + 1e-3));
      if (document.activeElement !== el.slider) el.slider.value = String(state.frame);
      el.clock.textContent = `${state.frame + 1} / ${d.frames} \u00b7 ${(state.frame / d.fps).toFixed(2)} s`;
      const icon = state.playing ? "\u275a\u275a" : "\u25b6";
      if (el.play.textContent !== icon) el.play.textContent = icon;
      if (state.dirty) draw();
    }
    state.lastTick = now;
    requestAnimationFrame(tick);
  }

  // ---------------------------------------------------------------- input
  function bindInput() {
    let drag = null;
    el.canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, pan: e.shiftKey || e.button === 2 };
      el.canvas.setPointerCapture(e.pointerId);
    });
    el.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      drag.x = e.clientX;
      drag.y = e.clientY;
      const cam = state.cam;
      if (drag.pan) {
        const basis = cameraBasis(el.canvas.clientWidth, el.canvas.clientHeight);
        const k = cam.dist / basis.focal;
        cam.target = cam.target.map((t, i) => t - k * (dx * basis.right[i] - dy * basis.up[i]));
      } else {
        cam.yaw -= dx * 0.008;
        cam.pitch = Math.max(-0.35, Math.min(1.5, cam.pitch + dy * 0.008));
      }
      state.dirty = true;
    });
    const endDrag = () => { drag = null; };
    el.canvas.addEventListener("pointerup", endDrag);
    el.canvas.addEventListener("pointercancel", endDrag);
    el.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    el.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      state.cam.dist = Math.max(0.4, Math.min(60, state.cam.dist * Math.exp(e.deltaY * 0.0012)));
      state.dirty = true;
    }, { passive: false });
    el.canvas.addEventListener("dblclick", resetView);
    el.reset.addEventListener("click", resetView);
    el.play.addEventListener("click", togglePlay);
    el.slider.addEventListener("input", () => seek(Number(el.slider.value)));
    document.addEventListener("keydown", (e) => {
      if (!state.data || e.target === el.keyInput) return;
      if (e.key === " ") { e.preventDefault(); togglePlay(); }
      else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault();
        if (state.playing) togglePlay();
        seek(state.frame + (e.key === "ArrowRight" ? 1 : -1));
      }
    });
    el.keyForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const key = el.keyInput.value.trim();
      if (!key) return;
      storeKey(key);
      el.keyInput.value = "";
      hideMessage();
      load();
    });
    new ResizeObserver(() => { state.dirty = true; }).observe(el.canvas);
  }

  el.job.textContent = `job ${jobId}`;
  bindInput();
  keyFromFragment();
  load();
  requestAnimationFrame(tick);
})();
