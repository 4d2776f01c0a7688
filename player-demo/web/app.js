// hivecast demo page: one hls.js player per agent, and live charts of where each agent's
// bytes come from. No framework, no chart library.
//
// Data sources:
//   /demo/agents.json   layout written by the demo binary (mode, origin, players)
//   {agent}/api/stats   per agent, polled every poll_ms:
//     {"peer_id", "downloaded_bytes": {"origin", "peer"}, "uploaded_bytes", "served_bytes",
//      "peers", "integrity_failures", "cache_bytes"}
//   /demo/origin.json   the origin's own counters (origin egress as measured at the origin)
// In origin-direct mode there are no agents: a player's "from origin" figure is what hls.js
// itself loaded (FRAG_LOADED), so the charts still move.
//
// window.hivecastDemo.snapshot() returns a plain object for automated tests.
'use strict';

(function () {
  const WINDOW_SECONDS = 120;
  // The time axis grows with the page's age up to WINDOW_SECONDS, so the first minute of
  // data fills the chart instead of a sliver at its right edge.
  const MIN_WINDOW_SECONDS = 30;
  const RATE_WINDOW = 4;
  const COLORS = {
    origin: '#e8862a', peer: '#23a35a', upload: '#3a78d6', offload: '#8a55d0',
    grid: '#e3e6ee', text: '#6b7285',
  };

  const demo = {
    layout: null,
    players: [],
    swarm: { series: [], totals: null },
    origin: { bytes: 0, raw: [], rate: 0 },
    startedAt: performance.now(),
    snapshot,
  };
  window.hivecastDemo = demo;

  // ---------- formatting ----------
  function fmtBytes(n) {
    if (!Number.isFinite(n)) return '–';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }
  function fmtRate(bytesPerSec) {
    const bits = bytesPerSec * 8;
    const trimZeros = (x) => String(Number(x.toFixed(2)));
    if (bits >= 1e6) return trimZeros(bits / 1e6) + ' Mbit/s';
    return (bits / 1e3).toFixed(0) + ' kbit/s';
  }
  // Peer ids are 20 bytes; the agent reports them as hex. Show the printable form
  // ("-HC0001-" + 12 random characters) when there is one.
  function fmtPeerId(id) {
    const s = String(id);
    if (/^([0-9a-f]{2}){20}$/i.test(s)) {
      let out = '';
      for (let i = 0; i < s.length; i += 2) out += String.fromCharCode(parseInt(s.slice(i, i + 2), 16));
      if (/^[\x21-\x7e]+$/.test(out)) return out;
    }
    return s;
  }
  function fmtPct(x) { return Number.isFinite(x) ? (x * 100).toFixed(1) + ' %' : '–'; }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---------- chart ----------
  // series: [{t (s), origin, peer, upload (bytes/s), offload (0..1 or null)}]
  function drawChart(canvas, series) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 600;
    const cssH = canvas.clientHeight || Number(canvas.getAttribute('height')) || 150;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const pad = { l: 72, r: 40, t: 8, b: 18 };
    const w = cssW - pad.l - pad.r;
    const h = cssH - pad.t - pad.b;
    const now = series.length ? series[series.length - 1].t : 0;
    const span = Math.min(WINDOW_SECONDS, Math.max(MIN_WINDOW_SECONDS, Math.ceil(now / 10) * 10));
    const t0 = now - span;
    let max = 0;
    for (const p of series) max = Math.max(max, p.origin, p.peer, p.upload);
    max = niceMax(max);
    const x = (t) => pad.l + ((t - t0) / span) * w;
    const y = (v) => pad.t + h - (v / max) * h;
    const yPct = (f) => pad.t + h - f * h;

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const gy = pad.t + (h * i) / 4;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath(); ctx.moveTo(pad.l, gy); ctx.lineTo(pad.l + w, gy); ctx.stroke();
      ctx.fillStyle = COLORS.text;
      ctx.textAlign = 'right';
      ctx.fillText(fmtRate(max * (1 - i / 4)), pad.l - 6, gy + 4);
      ctx.textAlign = 'left';
      ctx.fillStyle = COLORS.offload;
      ctx.fillText(((1 - i / 4) * 100).toFixed(0) + '%', pad.l + w + 6, gy + 4);
    }
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = 'center';
    const step = span <= 40 ? 10 : span <= 80 ? 20 : 30;
    for (let back = 0; back <= span; back += step) {
      ctx.fillText(back === 0 ? 'now' : '-' + back + 's', x(now - back), cssH - 4);
    }
    const visible = series.filter((p) => p.t >= t0);
    if (visible.length < 2) {
      ctx.fillStyle = COLORS.text;
      ctx.fillText('collecting…', pad.l + w / 2, pad.t + h / 2);
      return;
    }
    // Filled area for peers (the good part), lines for the rest.
    area(ctx, visible, x, y, 'peer', COLORS.peer);
    line(ctx, visible, x, y, 'origin', COLORS.origin, []);
    line(ctx, visible, x, y, 'peer', COLORS.peer, []);
    line(ctx, visible, x, y, 'upload', COLORS.upload, [5, 4]);
    const pts = visible.filter((p) => p.offload !== null && Number.isFinite(p.offload));
    if (pts.length > 1) {
      ctx.strokeStyle = COLORS.offload; ctx.lineWidth = 1.5; ctx.setLineDash([2, 3]);
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), yPct(p.offload)) : ctx.moveTo(x(p.t), yPct(p.offload))));
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
  function niceMax(v) {
    if (v <= 0) return 125000; // 1 Mbit/s
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * 1.1) return m * p;
    return 10 * p;
  }
  function line(ctx, pts, x, y, key, color, dash) {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash(dash);
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  function area(ctx, pts, x, y, key, color) {
    ctx.fillStyle = color + '22';
    ctx.beginPath();
    ctx.moveTo(x(pts[0].t), y(0));
    for (const p of pts) ctx.lineTo(x(p.t), y(p[key]));
    ctx.lineTo(x(pts[pts.length - 1].t), y(0));
    ctx.closePath();
    ctx.fill();
  }
  function trim(series, now) {
    while (series.length && series[0].t < now - WINDOW_SECONDS - 5) series.shift();
  }

  // ---------- players ----------
  function makePlayer(entry, index) {
    const card = el('section', 'card player');
    const head = el('div', 'player-head');
    const name = el('span', 'name', entry.name);
    const url = el('span', 'url', entry.player_url);
    url.title = entry.player_url;
    const stateEl = el('span', 'state', 'starting');
    head.append(name, url, stateEl);
    const body = el('div', 'player-body');
    const video = el('video');
    video.muted = true; video.autoplay = true; video.playsInline = true; video.controls = true;
    const right = el('div');
    const nums = el('div', 'nums');
    const cells = {};
    for (const [key, label, cls] of [
      ['origin', 'from origin', 'origin'], ['peer', 'from peers', 'peer'], ['offload', 'offload', 'offload'],
      ['peers', 'peers', ''], ['upload', 'uploaded', 'upload'], ['buffer', 'buffer / position', ''],
      ['served', 'served to player', ''], ['integrity', 'integrity failures', ''], ['cache', 'cache', ''],
    ]) {
      const c = el('div', cls);
      const b = el('b', '', '–');
      c.append(b, document.createTextNode(label));
      nums.append(c);
      cells[key] = b;
    }
    const canvas = el('canvas', 'chart');
    const note = el('div', 'note');
    right.append(nums, canvas, note);
    body.append(video, right);
    card.append(head, body);
    document.getElementById('players').append(card);

    const p = {
      index, name: entry.name, url: entry.player_url, statsUrl: entry.stats_url || null,
      video, canvas, cells, stateEl, note, hls: null,
      fatal: [], nonFatal: 0, lastError: null, hlsLoadedBytes: 0,
      stats: null, raw: [], statsError: null, series: [], firstPlayingAt: null,
    };
    startPlayback(p);
    return p;
  }

  function startPlayback(p) {
    const video = p.video;
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({
        liveSyncDurationCount: 3,
        maxBufferLength: 20,
        backBufferLength: 30,
        lowLatencyMode: false,
        enableWorker: true,
      });
      p.hls = hls;
      hls.on(window.Hls.Events.ERROR, (_ev, data) => {
        const what = data.type + ':' + data.details;
        p.lastError = what;
        if (data.fatal) {
          p.fatal.push(what);
          setNote(p, 'fatal hls.js error: ' + what + ' (recovering)', true);
          if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
          else hls.startLoad();
        } else {
          p.nonFatal++;
        }
      });
      hls.on(window.Hls.Events.FRAG_LOADED, (_ev, data) => {
        const st = data.frag && data.frag.stats;
        p.hlsLoadedBytes += (st && st.loaded) || (data.payload && data.payload.byteLength) || 0;
      });
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
      hls.loadSource(p.url);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = p.url; // native HLS (Safari)
      video.play().catch(() => {});
    } else {
      p.fatal.push('no HLS support in this browser');
      setNote(p, 'this browser cannot play HLS', true);
    }
    video.addEventListener('playing', () => {
      if (p.firstPlayingAt === null) p.firstPlayingAt = performance.now();
    });
  }

  function setNote(p, text, isError) {
    p.note.textContent = text;
    p.note.className = 'note' + (isError ? ' error' : '');
  }

  function bufferAhead(video) {
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && b.end(i) >= video.currentTime) return b.end(i) - video.currentTime;
    }
    return 0;
  }

  // ---------- polling ----------
  async function fetchJson(url) {
    const r = await fetch(url, { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return r.json();
  }

  function normStats(s) {
    const d = s.downloaded_bytes || {};
    return {
      peer_id: s.peer_id || null,
      origin: Number(d.origin) || 0,
      peer: Number(d.peer) || 0,
      uploaded: Number(s.uploaded_bytes) || 0,
      served: Number(s.served_bytes) || 0,
      peers: Number(s.peers) || 0,
      integrity: Number(s.integrity_failures) || 0,
      cache: Number(s.cache_bytes) || 0,
    };
  }

  async function pollPlayer(p, t) {
    let cur;
    if (p.statsUrl) {
      try {
        cur = normStats(await fetchJson(p.statsUrl));
        p.statsError = null;
      } catch (e) {
        p.statsError = String(e && e.message ? e.message : e);
        setNote(p, 'agent stats unreachable: ' + p.statsError, true);
        return;
      }
    } else {
      // origin-direct: what hls.js loaded, all of it from the origin.
      cur = { peer_id: null, origin: p.hlsLoadedBytes, peer: 0, uploaded: 0, served: p.hlsLoadedBytes,
              peers: 0, integrity: 0, cache: 0 };
    }
    p.stats = cur;
    // Rates over the last RATE_WINDOW seconds (segments arrive in bursts every few seconds,
    // so a one-poll difference would zigzag).
    p.raw.push({ t, origin: cur.origin, peer: cur.peer, uploaded: cur.uploaded });
    while (p.raw.length > 2 && p.raw[1].t <= t - RATE_WINDOW) p.raw.shift();
    const base = p.raw[0];
    if (p.raw.length > 1 && t > base.t) {
      const dt = t - base.t;
      p.series.push({
        t,
        origin: Math.max(0, cur.origin - base.origin) / dt,
        peer: Math.max(0, cur.peer - base.peer) / dt,
        upload: Math.max(0, cur.uploaded - base.uploaded) / dt,
        offload: cur.origin + cur.peer > 0 ? cur.peer / (cur.origin + cur.peer) : null,
      });
      trim(p.series, t);
    }
  }

  function renderPlayer(p) {
    const s = p.stats;
    const c = p.cells;
    if (s) {
      c.origin.textContent = fmtBytes(s.origin);
      c.peer.textContent = fmtBytes(s.peer);
      c.offload.textContent = s.origin + s.peer > 0 ? fmtPct(s.peer / (s.origin + s.peer)) : '–';
      c.peers.textContent = p.statsUrl ? String(s.peers) : 'n/a';
      c.upload.textContent = p.statsUrl ? fmtBytes(s.uploaded) : 'n/a';
      c.served.textContent = fmtBytes(s.served);
      c.integrity.textContent = p.statsUrl ? String(s.integrity) : 'n/a';
      c.integrity.parentElement.className = s.integrity > 0 ? 'bad' : '';
      c.cache.textContent = p.statsUrl ? fmtBytes(s.cache) : 'n/a';
    }
    const v = p.video;
    c.buffer.textContent = bufferAhead(v).toFixed(1) + ' s / ' + v.currentTime.toFixed(1);
    const playing = !v.paused && v.readyState >= 3;
    if (p.fatal.length && !playing) {
      p.stateEl.textContent = 'error'; p.stateEl.className = 'state error';
    } else if (playing) {
      p.stateEl.textContent = 'playing'; p.stateEl.className = 'state playing';
      if (!p.statsError && !p.fatal.length) {
        const id = s && s.peer_id ? 'peer id ' + fmtPeerId(s.peer_id) : '';
        setNote(p, id, false);
      }
    } else {
      p.stateEl.textContent = v.readyState < 3 && p.firstPlayingAt ? 'buffering' : 'starting';
      p.stateEl.className = 'state';
    }
    drawChart(p.canvas, p.series);
  }

  async function pollOrigin(t) {
    try {
      const o = await fetchJson('/demo/origin.json');
      const bytes = (o.total && Number(o.total.bytes)) || 0;
      // Same RATE_WINDOW average as the per-agent rates (segments come in bursts).
      const raw = demo.origin.raw;
      raw.push({ t, bytes });
      while (raw.length > 2 && raw[1].t <= t - RATE_WINDOW) raw.shift();
      if (raw.length > 1 && t > raw[0].t) {
        demo.origin.rate = Math.max(0, bytes - raw[0].bytes) / (t - raw[0].t);
      }
      demo.origin.bytes = bytes;
    } catch (_e) {
      // The demo is shutting down; keep the last figures.
    }
  }

  function renderSwarm(t) {
    const ps = demo.players.filter((p) => p.stats);
    const tot = { origin: 0, peer: 0, uploaded: 0, peers: 0 };
    for (const p of ps) {
      tot.origin += p.stats.origin; tot.peer += p.stats.peer;
      tot.uploaded += p.stats.uploaded; tot.peers += p.stats.peers;
    }
    demo.swarm.totals = tot;
    const n = demo.players.length;
    const p2p = demo.layout && demo.layout.mode === 'p2p';
    document.getElementById('t-origin').textContent = fmtBytes(tot.origin);
    document.getElementById('t-peer').textContent = fmtBytes(tot.peer);
    document.getElementById('t-offload').textContent =
      tot.origin + tot.peer > 0 ? fmtPct(tot.peer / (tot.origin + tot.peer)) : '–';
    document.getElementById('t-ideal').textContent = 'ideal with ' + n + ' viewers: ' + fmtPct(1 - 1 / n);
    document.getElementById('t-peers').textContent = p2p ? String(tot.peers) : 'n/a';
    document.getElementById('t-upload').textContent = p2p ? fmtBytes(tot.uploaded) : 'n/a';
    document.getElementById('t-egress').textContent = fmtBytes(demo.origin.bytes);
    document.getElementById('t-egress-rate').textContent = fmtRate(demo.origin.rate) + ' now';
    // Swarm series: sum of the latest per-player rates.
    let origin = 0, peer = 0, upload = 0;
    for (const p of demo.players) {
      const last = p.series[p.series.length - 1];
      if (last && last.t > t - 3) { origin += last.origin; peer += last.peer; upload += last.upload; }
    }
    if (ps.length) {
      demo.swarm.series.push({
        t, origin, peer, upload,
        offload: tot.origin + tot.peer > 0 ? tot.peer / (tot.origin + tot.peer) : null,
      });
      trim(demo.swarm.series, t);
    }
    drawChart(document.getElementById('swarm-chart'), demo.swarm.series);
  }

  async function tick() {
    const t = (performance.now() - demo.startedAt) / 1000;
    await Promise.all([pollOrigin(t), ...demo.players.map((p) => pollPlayer(p, t))]);
    for (const p of demo.players) renderPlayer(p);
    renderSwarm(t);
    document.getElementById('clock').textContent = 'up ' + Math.floor(t) + ' s';
  }

  function snapshot() {
    return {
      mode: demo.layout ? demo.layout.mode : null,
      players: demo.players.map((p) => ({
        name: p.name,
        url: p.url,
        currentTime: p.video.currentTime,
        paused: p.video.paused,
        readyState: p.video.readyState,
        videoWidth: p.video.videoWidth,
        fatal: p.fatal.slice(),
        nonFatal: p.nonFatal,
        lastError: p.lastError,
        hlsLoadedBytes: p.hlsLoadedBytes,
        stats: p.stats,
        statsError: p.statsError,
      })),
      swarm: demo.swarm.totals,
      originBytes: demo.origin.bytes,
    };
  }

  async function main() {
    const modeEl = document.getElementById('mode');
    let layout;
    try {
      layout = await fetchJson('/demo/agents.json');
    } catch (e) {
      modeEl.textContent = 'cannot load /demo/agents.json: ' + e;
      modeEl.className = 'badge warn';
      return;
    }
    demo.layout = layout;
    modeEl.textContent = layout.mode === 'p2p'
      ? layout.agents.length + ' agents · P2P'
      : layout.agents.length + ' players · origin-direct (no agents)';
    if (layout.mode !== 'p2p') {
      modeEl.className = 'badge warn';
      // Without agents, "from origin" is what each hls.js loaded (the browser cache may
      // serve repeats, so the origin's own egress can be lower).
      document.getElementById('l-origin').textContent = 'loaded by players (hls.js)';
    }
    if (!window.Hls) {
      modeEl.textContent = 'hls.js failed to load';
      modeEl.className = 'badge warn';
    }
    layout.agents.forEach((a, i) => demo.players.push(makePlayer(a, i)));
    const every = Math.max(250, Number(layout.poll_ms) || 1000);
    const loop = async () => {
      try { await tick(); } catch (e) { console.error('tick failed', e); }
      setTimeout(loop, every);
    };
    loop();
  }

  main();
})();
