// Sluice watch page: lists a channel's live publishers and plays each over WHEP.
// Plain browser JavaScript, served from the dataplane binary; no build step.
'use strict';

const parts = location.pathname.split('/').filter(Boolean); // watch, app, channel
const app = decodeURIComponent(parts[1] || '');
const channel = decodeURIComponent(parts[2] || '');
const tiles = new Map(); // uid -> tile state
// Read by tests and by curious users in the console.
window.sluiceStats = {};

document.getElementById('where').textContent = `${app} / ${channel}`;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function waitIceGathering(pc) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    // Loopback and host candidates gather at once; do not wait on slow interfaces.
    setTimeout(resolve, 1000);
  });
}

async function play(tile) {
  const pc = new RTCPeerConnection();
  tile.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (ev) => {
    stream.addTrack(ev.track);
    tile.video.srcObject = stream;
  };
  pc.onconnectionstatechange = () => {
    tile.state = pc.connectionState;
    if (pc.connectionState === 'failed') restart(tile);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitIceGathering(pc);
  const url = `/whep/${encodeURIComponent(app)}/${encodeURIComponent(channel)}/${encodeURIComponent(tile.uid)}`;
  const resp = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const text = await resp.text();
  if (resp.status !== 201) {
    tile.warn.textContent = `WHEP ${resp.status}: ${text}`;
    pc.close();
    tile.pc = null;
    return;
  }
  tile.location = resp.headers.get('Location');
  const notes = resp.headers.get('X-Sluice-Notes');
  if (notes) tile.warn.textContent = notes;
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
}

function restart(tile) {
  stop(tile, false);
  setTimeout(() => { if (tiles.has(tile.uid)) play(tile).catch((e) => { tile.warn.textContent = String(e); }); }, 1000);
}

function stop(tile, remove) {
  if (tile.pc) tile.pc.close();
  tile.pc = null;
  if (tile.location) fetch(tile.location, { method: 'DELETE' }).catch(() => {});
  tile.location = null;
  if (remove) {
    clearInterval(tile.timer);
    tile.root.remove();
    tiles.delete(tile.uid);
    delete window.sluiceStats[tile.uid];
  }
}

async function sample(tile) {
  if (!tile.pc) return;
  const report = await tile.pc.getStats();
  const s = { uid: tile.uid, state: tile.pc.connectionState };
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      s.framesDecoded = r.framesDecoded || 0;
      s.width = r.frameWidth || 0;
      s.height = r.frameHeight || 0;
      s.fps = r.framesPerSecond || 0;
      s.videoBytes = r.bytesReceived || 0;
      s.videoPackets = r.packetsReceived || 0;
      s.videoLost = r.packetsLost || 0;
      s.nacks = r.nackCount || 0;
      s.plis = r.pliCount || 0;
      // Time frames spent in the jitter buffer: the viewer-side share of the delay.
      if (r.jitterBufferEmittedCount) s.jitterMs = 1000 * r.jitterBufferDelay / r.jitterBufferEmittedCount;
    } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      s.audioPackets = r.packetsReceived || 0;
      s.audioBytes = r.bytesReceived || 0;
      s.audioLost = r.packetsLost || 0;
    } else if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
      if (r.currentRoundTripTime !== undefined) s.rttMs = 1000 * r.currentRoundTripTime;
    }
  });
  const now = performance.now();
  const prev = tile.prev;
  if (prev) {
    const dt = (now - prev.t) / 1000;
    s.kbps = Math.round(((s.videoBytes || 0) + (s.audioBytes || 0) - prev.bytes) * 8 / 1000 / dt);
    const recv = (s.videoPackets || 0) - prev.packets;
    const lost = (s.videoLost || 0) - prev.lost;
    s.lossPct = recv + lost > 0 ? Math.max(0, 100 * lost / (recv + lost)) : 0;
  }
  tile.prev = { t: now, bytes: (s.videoBytes || 0) + (s.audioBytes || 0), packets: s.videoPackets || 0, lost: s.videoLost || 0 };
  // Viewer-side delay: half the round trip (network) plus the jitter buffer.
  if (s.jitterMs !== undefined) s.delayMs = Math.round(s.jitterMs + (s.rttMs || 0) / 2);
  window.sluiceStats[tile.uid] = s;
  const info = tile.info || {};
  tile.stats.textContent =
    `${s.width || '?'}×${s.height || '?'} · ${Math.round(s.fps || 0)} fps · ${s.kbps ?? '…'} kbps\n` +
    `loss ${s.lossPct !== undefined ? s.lossPct.toFixed(1) : '…'} % · delay ${s.delayMs ?? '…'} ms · ` +
    `frames ${s.framesDecoded || 0} · audio pkts ${s.audioPackets || 0}` +
    (info.video && info.video.codec ? `\nsource ${info.video.codec}, audio ${info.audio.codec || 'none'} → WebRTC ${info.audio.webrtc}` : '');
  if (info.video && info.video.bframes && !tile.warn.textContent.includes('B-frames')) {
    tile.warn.textContent = (tile.warn.textContent ? tile.warn.textContent + '; ' : '') +
      'the encoder uses B-frames: playback may stutter in browsers';
  }
}

function addTile(uid) {
  const root = el('div', 'tile');
  const video = el('video');
  video.autoplay = true;
  video.muted = true; // autoplay policy; unmute with the controls
  video.playsInline = true;
  video.controls = true;
  const bar = el('div', 'bar');
  bar.append(el('span', 'uid', `uid ${uid}`));
  const stats = el('div', 'stats', 'starting…');
  const warn = el('div', 'warn', '');
  root.append(video, bar, stats, warn);
  document.getElementById('tiles').append(root);
  const tile = { uid, root, video, stats, warn, pc: null, location: null, prev: null, info: null };
  tile.timer = setInterval(() => sample(tile).catch(() => {}), 1000);
  tiles.set(uid, tile);
  play(tile).catch((e) => { warn.textContent = String(e); });
}

async function refresh() {
  try {
    const r = await fetch(`/api/live/${encodeURIComponent(app)}/${encodeURIComponent(channel)}`);
    const live = await r.json();
    const uids = new Set(live.streams.map((s) => s.uid));
    for (const s of live.streams) {
      if (!tiles.has(s.uid)) addTile(s.uid);
      tiles.get(s.uid).info = s;
    }
    for (const [uid, tile] of tiles) if (!uids.has(uid)) stop(tile, true);
    document.getElementById('empty').style.display = uids.size ? 'none' : 'block';
    document.getElementById('status').textContent = `${uids.size} live · ${live.viewers} viewer session(s)`;
  } catch (e) {
    document.getElementById('status').textContent = `cannot reach the gateway: ${e}`;
  }
}

window.addEventListener('beforeunload', () => { for (const t of tiles.values()) stop(t, false); });
refresh();
setInterval(refresh, 2000);
