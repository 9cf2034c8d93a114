// tests/browser: Chromium viewers (the page GET /watch/TREE serves, with
// peertree.js) under GStreamer relays. Run by run-browser.sh inside a
// loopback-only network namespace; exits 0 on success, 1 on a failure, 77
// when it cannot run (no chromium, no playwright-core).
// SPDX-License-Identifier: LGPL-2.1-or-later
//
//   node test-browser.mjs CASE     CASE: play | play-h264 | relay-killed | repair | messages |
//                                  data | data-forged | data-resume
//
// Environment: PEERTREE_SERVER (the binary), PT_GST_PEER (tests/gst's peer
// program), GST_PLUGIN_PATH (our plugin), CHROMIUM (default /usr/bin/chromium),
// PT_BROWSER_KEEP_LOGS=1 (print every process's log at the end).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const SKIP = 77;
// bound of every wait; under loss a keyframe or a repair may take a few rounds
const WAIT_MS = process.argv[2] === 'repair' ? 60000 : 30000;
const POLL_MS = 200;

const server = process.env.PEERTREE_SERVER;
const gstPeer = process.env.PT_GST_PEER;
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const testCase = process.argv[2] ?? 'play';
const keepLogs = process.env.PT_BROWSER_KEEP_LOGS === '1';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(`SKIP: playwright-core cannot be loaded (${e.message}); scripts/deps installs it`);
  process.exit(SKIP);
}
if (!existsSync(chromiumPath)) {
  console.log(`SKIP: no Chromium at ${chromiumPath}; scripts/deps installs Debian's chromium`);
  process.exit(SKIP);
}
if (!server || !gstPeer) {
  console.error('PEERTREE_SERVER and PT_GST_PEER must be set (meson test sets them)');
  process.exit(1);
}

// ---- processes ----
const procs = [];

function start (name, cmd, args, { stdin = false, env = {} } = {}) {
  const p = spawn(cmd, args, {
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  const node = { name, p, out: '', exited: null };
  p.stdout.on('data', (d) => { node.out += d; });
  p.stderr.on('data', (d) => { node.out += d; });
  p.on('exit', (code, signal) => { node.exited = signal ?? code; });
  procs.push(node);
  return node;
}

async function waitFor (what, fn, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

function assert (cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

let httpBase;
async function status () {
  const r = await fetch(`${httpBase}/status`);
  return r.json();
}

async function members (tree) {
  const t = (await status()).trees.find((x) => x.id === tree);
  return t ? t.members : [];
}

async function parentOf (tree, id) {
  return (await members(tree)).find((m) => m.id === id)?.parent ?? null;
}

const VIDEO = 'videotestsrc is-live=true pattern=ball ! ' +
  'video/x-raw,width=320,height=240,framerate=20/1';
const AUDIO = 'audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate=48000,channels=2';

function gstSource (url, tree, k1, k, codec) {
  return start('source', gstPeer, [
    `peertreesink name=s server=${url} tree-id=${tree} client-id=source k1=${k1} k=${k} ` +
    `video-codec=${codec} local-addresses=127.0.0.1 ${VIDEO} ! s.video_0 ${AUDIO} ! s.audio_0`]);
}

// shed-overload off: on a loaded 2-core machine the browsers' receiver
// reports can show loss that is theirs, not the relay's uplink, and a shed
// would move a page these cases expect under its relay (shedding has its own
// lab test, netlab-shed)
function gstRelay (url, tree, name, env = {}) {
  return start(name, gstPeer, [
    `peertreesrc server=${url} tree-id=${tree} client-id=${name} ` +
    'local-addresses=127.0.0.1 shed-overload=false ! fakesink'], { env });
}

// The data cases: peers log their data hub (its RESUMEs); a relay is a live
// member once its RESUME to its parent went out. A member that is not yet
// live when the source sends starts after what was sent (RESUME_NEW), so the
// cases wait for that before they send.
const DATA_DEBUG = { GST_DEBUG: 'peertreedata:5' };
function dataLive (node, parent) {
  return waitFor(`${node.name}'s RESUME to ${parent}`,
    () => new RegExp(`parent ${parent}: resume after`).test(node.out));
}

// waitFor() about page @v's data: a timeout says what its data link
// looks like.
async function waitForPage (v, what, fn) {
  try {
    return await waitFor(what, fn);
  } catch (e) {
    throw new Error(`${e.message}: ${await pageData(v)}`);
  }
}

// A page is a live member of its parent once the parent took its RESUME
// (the parent's data hub logs it); until then what is sent does not reach
// it.
function childLive (node, v) {
  return waitForPage(v, `${node.name} to take ${v.name}'s RESUME`,
    () => new RegExp(`child ${v.id} resumes after`).test(node.out));
}

// Until page @v delivered @n data messages.
function waitForData (v, n, what) {
  return waitForPage(v, what,
    () => v.page.evaluate((k) => window.dataGot.seqs.length >= k, n));
}

// What a page's data link looks like, for a failure's message.
function pageData (v) {
  return v.page.evaluate(() => {
    const w = window.peertreeViewer;
    const l = w.dataLink;
    return JSON.stringify({
      parent: w.parent, links: w.links, stats: w.dataStats, got: window.dataGot?.seqs.length,
      link: l && { parent: l.parent, state: l.channel.readyState, resumed: l.resumed, gone: l.gone,
        reported: l.reported },
    });
  }).catch((e) => `(page: ${e.message})`);
}

// ---- the browser ----
const pageLogs = [];
async function openViewer (context, tree, name) {
  const page = await context.newPage();
  // a page's console goes out at once with PT_BROWSER_KEEP_LOGS=1, else
  // it is kept (its last lines) and printed when the case fails
  page.on('console', (m) => {
    const line = `[${name}] ${m.text()}`;
    if (keepLogs) console.log(line);
    else pageLogs.push(line), pageLogs.length > 400 && pageLogs.shift();
  });
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  await page.goto(`${httpBase}/watch/${tree}?debug=1`);
  await page.waitForFunction(() => window.peertreeViewer?.client?.clientId, null,
    { timeout: WAIT_MS });
  const id = await page.evaluate(() => window.peertreeViewer.client.clientId);
  return { page, name, id };
}

// The <video> plays: a picture size, and decoded frames that keep rising.
async function playing (v, after = 0) {
  const q = () => v.page.evaluate(() => {
    const video = document.getElementById('video');
    const pq = video.getVideoPlaybackQuality();
    return { w: video.videoWidth, h: video.videoHeight, frames: pq.totalVideoFrames };
  });
  const first = await waitFor(`${v.name} to show a picture`, async () => {
    const s = await q();
    return s.w > 0 && s.frames > after ? s : null;
  });
  const later = await waitFor(`${v.name}'s frames to rise`, async () => {
    const s = await q();
    return s.frames >= first.frames + 10 ? s : null;
  });
  return later;
}

// Audio packets received on the current link (its inbound-rtp stats).
async function audioPackets (v) {
  return v.page.evaluate(async () => {
    const pc = window.peertreeViewer.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.packetsReceived;
    });
    return n;
  });
}

// The codecs (mime types) of the current link's inbound-rtp streams.
async function inboundCodecs (v) {
  return v.page.evaluate(async () => {
    const stats = await window.peertreeViewer.pc.getStats();
    const out = [];
    stats.forEach((s) => {
      // mime types are case-insensitive (webrtcbin offers OPUS)
      if (s.type === 'inbound-rtp' && s.codecId) out.push(stats.get(s.codecId)?.mimeType.toLowerCase());
    });
    return out.sort().join(',');
  });
}

// The current link's video inbound-rtp: NACKs sent, packets received again.
async function videoRepair (v) {
  return v.page.evaluate(async () => {
    const r = { nacks: 0, retransmitted: 0, lost: 0, plis: 0 };
    const pc = window.peertreeViewer.pc;
    if (!pc) return r;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        r.nacks += s.nackCount ?? 0;
        r.retransmitted += s.retransmittedPacketsReceived ?? 0;
        r.lost += s.packetsLost ?? 0;
        r.plis += s.pliCount ?? 0;
      }
    });
    return r;
  });
}

async function audioFlows (v) {
  const first = await waitFor(`${v.name}'s audio`, async () => {
    const n = await audioPackets(v);
    return n > 0 ? n : null;
  });
  await waitFor(`${v.name}'s audio to keep coming`, async () => (await audioPackets(v)) > first + 10);
  return v.page.evaluate(() => document.getElementById('video').srcObject.getAudioTracks().length);
}

async function main () {
  // the server on a free port, its URL from its first line
  const srv = start('server', server, ['--port', '0', '--k', '2', '--k1', '2']);
  const url = await waitFor('the server', () => /ws:\/\/[^\s]+/.exec(srv.out)?.[0]);
  httpBase = url.replace(/^ws:/, 'http:');
  const tree = 'cam';

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--allow-loopback-in-peer-connection',
      '--use-fake-ui-for-media-stream',
      // host candidates with their IP, not an mDNS name (libnice resolves none)
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
      '--no-sandbox',
    ],
  });
  try {
    const context = await browser.newContext();
    if (testCase === 'messages') {
      await messagesCase(context);
      return;
    }
    if (testCase === 'data-resume') {
      await dataResumeCase(context, url, tree);
      return;
    }
    if (testCase === 'data' || testCase === 'data-forged') {
      await dataCase(context, url, tree, testCase === 'data-forged');
      return;
    }
    const codec = testCase === 'play-h264' ? 'h264' : 'vp8';
    const src = gstSource(url, tree, 2, 2, codec);
    await waitFor('the tree', async () => (await members(tree)).length === 1);
    const relays = [gstRelay(url, tree, 'relay-1')];
    await waitFor('relay-1 to join', async () => (await parentOf(tree, 'relay-1')) === 'source');
    relays.push(gstRelay(url, tree, 'relay-2'));
    await waitFor('relay-2 to join', async () => (await parentOf(tree, 'relay-2')) === 'source');

    const viewers = [];
    for (let i = 1; i <= 3; i++) viewers.push(await openViewer(context, tree, `browser-${i}`));
    // the browsers are leaves under the relays (the source is full)
    for (const v of viewers) {
      const parent = await waitFor(`${v.name}'s place`, () => parentOf(tree, v.id));
      assert(parent.startsWith('relay-'), `${v.name} is under a relay (${parent})`);
      v.parent = parent;
    }
    for (const v of viewers) {
      const s = await playing(v);
      console.log(`${v.name} (${v.id}) under ${v.parent}: ${s.w}x${s.h}, ${s.frames} frames`);
      assert(s.w === 320 && s.h === 240, `${v.name} shows 320x240`);
      const a = await audioFlows(v);
      assert(a === 1, `${v.name} plays one audio track (${a})`);
      const codecs = await inboundCodecs(v);
      const want = codec === 'h264' ? 'video/h264' : 'video/vp8';
      assert(codecs.includes(want) && codecs.includes('audio/opus'),
        `${v.name} receives ${want} and Opus (${codecs})`);
    }
    if (testCase === 'play') {
      // the server connection of a page drops: it says hello again with its
      // clientId and secret, joins again as a leaf, and plays again
      const v = viewers[0];
      const before = await v.page.evaluate(() => ({
        frames: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames,
        links: window.peertreeViewer.links,
      }));
      await v.page.evaluate(() => window.peertreeViewer.client.ws.close());
      await waitFor(`${v.name} to be back`, async () => {
        const back = await v.page.evaluate(() => window.peertreeViewer.client.connected);
        return back && (await parentOf(tree, v.id)) !== null;
      });
      await waitFor(`${v.name}'s new link`, () => v.page.evaluate(
        (n) => window.peertreeViewer.links > n, before.links));
      const s = await playing(v, before.frames);
      console.log(`${v.name} after a reconnection, under ${await parentOf(tree, v.id)}: ` +
        `${s.frames} frames`);
    }
    if (testCase === 'repair') {
      // from now on some UDP packets are lost (media and RTCP; the signalling
      // is TCP): each browser asks its relay again (NACK), gets the packets
      // back (RTX), and keeps playing
      const loss = Number(process.env.PT_BROWSER_LOSS ?? 3);
      for (const args of [['add', 'table', 'inet', 'ptloss'],
        ['add', 'chain', 'inet', 'ptloss', 'out', '{ type filter hook output priority 0; }'],
        ['add', 'rule', 'inet', 'ptloss', 'out', 'meta', 'l4proto', 'udp', 'numgen', 'random',
          'mod', '100', '<', String(loss), 'drop']]) execFileSync('nft', args);
      console.log(`dropping ${loss}% of the UDP packets`);
      for (const v of viewers) {
        const r = await waitFor(`${v.name}'s repairs`, async () => {
          const s = await videoRepair(v);
          return s.nacks > 0 && s.retransmitted > 0 ? s : null;
        });
        await playing(v);
        console.log(`${v.name}: ${r.nacks} NACKs sent, ${r.retransmitted} packets retransmitted, ` +
          `${r.lost} lost, ${r.plis} PLIs`);
      }
    }
    if (testCase === 'relay-killed') {
      const victim = relays[0];
      const orphans = viewers.filter((v) => v.parent === victim.name);
      assert(orphans.length > 0, `${victim.name} has browser children`);
      const before = new Map();
      for (const v of orphans) {
        before.set(v, await v.page.evaluate(() => ({
          frames: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames,
          links: window.peertreeViewer.links,
        })));
      }
      victim.p.kill('SIGKILL');
      console.log(`killed ${victim.name}`);
      for (const v of orphans) {
        const parent = await waitFor(`${v.name}'s new parent`, async () => {
          const p = await parentOf(tree, v.id);
          return p && p !== victim.name ? p : null;
        });
        // a new peer connection, and a picture again (no reload)
        await waitFor(`${v.name}'s new link`, () => v.page.evaluate(
          (n) => window.peertreeViewer.links > n, before.get(v).links));
        const s = await playing(v, before.get(v).frames);
        console.log(`${v.name} under ${parent} after the kill: ${s.w}x${s.h}, ${s.frames} frames`);
      }
      // the others never stopped
      for (const v of viewers.filter((x) => !orphans.includes(x))) await playing(v);
    }
    assert(src.exited === null, 'the source still runs');
  } finally {
    await browser.close();
  }
}

// The message API of peertree.js, between two pages.
async function messagesCase (context) {
  const a = await context.newPage();
  const b = await context.newPage();
  for (const p of [a, b]) {
    p.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await p.goto(`${httpBase}/watch/none`);
  }
  const connect = (p, id) => p.evaluate(async (clientId) => {
    const { PeerTreeClient } = await import('/peertree.js');
    window.c = new PeerTreeClient(undefined, { clientId });
    await window.c.connect();
    return window.c.clientId;
  }, id);
  assert(await connect(a, 'alice') === 'alice', 'alice connected');
  assert(await connect(b, 'bob') === 'bob', 'bob connected');
  // emit with ack: bob's handler's value comes back to alice
  await b.evaluate(() => { window.c.on('ping', (x, m) => `${x}, from ${m.from}`); });
  const v = await a.evaluate(() => window.c.emit('bob', 'ping', ['hi'], { ack: true }));
  assert(v === 'hi, from alice', `emit with ack answered (${v})`);
  const err = await a.evaluate(() => window.c.emit('nobody', 'ping').catch((e) => e.code));
  assert(err === 'client-not-found', `an emit to nobody fails (${err})`);
  // an ack nobody handles fails at once; a 'message' listener may answer later
  const unhandled = await a.evaluate(() =>
    window.c.emit('bob', 'nothing', [], { ack: true }).catch((e) => e.code));
  assert(unhandled === 'remote-error', `an unhandled ack is refused (${unhandled})`);
  await b.evaluate(() => window.c.addEventListener('message', (e) => {
    if (e.detail.name !== 'later') return;
    e.preventDefault();
    setTimeout(() => e.detail.reply('done later'), 200);
  }));
  const later = await a.evaluate(() => window.c.emit('bob', 'later', [], { ack: true }));
  assert(later === 'done later', `a late reply (${later})`);
  // noReply: resolves at once, a failure comes as an 'error' event
  const noReplyErr = await a.evaluate(() => new Promise((resolve) => {
    window.c.addEventListener('error', (e) => resolve(e.detail.code), { once: true });
    window.c.emit('nobody', 'ping', [], { noReply: true });
  }));
  assert(noReplyErr === 'client-not-found', `a noReply emit's error (${noReplyErr})`);
  // rooms
  await b.evaluate(async () => {
    window.roomGot = [];
    window.c.addEventListener('message', (e) => {
      if (e.detail.room) window.roomGot.push([e.detail.room, e.detail.name, e.detail.args]);
    });
    await window.c.roomJoin('lobby');
  });
  const delivered = await a.evaluate(async () => {
    await window.c.roomJoin('lobby');
    return window.c.roomEmit('lobby', 'say', ['hello all']);
  });
  assert(delivered === 1, `room-emit delivered to bob (${delivered})`);
  await waitFor('bob to get the room message', () => b.evaluate(() => window.roomGot.length === 1));
  const rooms = await a.evaluate(() => window.c.listRooms('bob'));
  assert(JSON.stringify(rooms) === '["lobby"]', `bob's rooms (${rooms})`);
  // services and topics
  await b.evaluate(async () => {
    await window.c.provide('math', (method, args) => args[0] + args[1], ['add']);
    await window.c.topicCreate('math', 'news');
  });
  const sum = await a.evaluate(() => window.c.call('math', 'add', [2, 40]));
  assert(sum === 42, `service call (${sum})`);
  const nm = await a.evaluate(() => window.c.call('math', 'mul', [2, 3]).catch((e) => e.code));
  assert(nm === 'method-not-found', `unknown method (${nm})`);
  await a.evaluate(async () => {
    window.topicGot = [];
    window.c.addEventListener('topic', (e) => window.topicGot.push(e.detail.args));
    await window.c.topicSubscribe('math', 'news');
  });
  const n = await b.evaluate(() => window.c.topicPublish('math', 'news', [7]));
  assert(n === 1, `topic-publish delivered (${n})`);
  await waitFor('alice to get the topic', () => a.evaluate(() => window.topicGot.length === 1));
  // bob's connection drops: he comes back under his clientId and provides
  // his service again
  await b.evaluate(() => window.c.ws.close());
  await waitFor('bob to be back', () => b.evaluate(() => window.c.connected));
  const again = await waitFor('math to be provided again', () => a.evaluate(
    () => window.c.call('math', 'add', [1, 2]).catch(() => null)));
  assert(again === 3, `the service after a reconnection (${again})`);
  assert(await b.evaluate(() => window.c.clientId) === 'bob', 'bob kept his clientId');
  const trees = await a.evaluate(() => window.c.call('peertree', 'list-trees'));
  assert(Array.isArray(trees), 'the service peertree answers');
  console.log('messages: emit with ack, rooms, services and topics work');
}

// Signed data down the tree to a page: a source with data=true (pt-gst-peer
// sends on "send N" from its stdin), one GStreamer relay, a page under it.
// data: every message arrives, in order, byte-identical (a SHA-256 of the
// payloads on both sides), none rejected. data-forged: the relay flips a bit
// of what it forwards; the page delivers nothing, counts the forgery and
// reports its parent.
async function dataCase (context, url, tree, forged) {
  const N = forged ? 20 : 200;
  const src = start('source', gstPeer, [
    `peertreesink name=s server=${url} tree-id=${tree} client-id=source k1=1 k=2 data=true ` +
    `video-codec=vp8 local-addresses=127.0.0.1 ${VIDEO} ! s.video_0`], { stdin: true });
  await waitFor('the tree', async () => (await members(tree)).length === 1);
  const relay = gstRelay(url, tree, 'relay-1',
    forged ? { PT_GST_PEER_TAMPER: 'flip', ...DATA_DEBUG } : DATA_DEBUG);
  await waitFor('relay-1 to join', async () => (await parentOf(tree, 'relay-1')) === 'source');
  await dataLive(relay, 'source');
  const v = await openViewer(context, tree, 'browser-1');
  await v.page.evaluate(() => {
    const viewer = window.peertreeViewer;
    window.dataGot = { seqs: [], chunks: [], lost: [], rejected: [], errors: [] };
    viewer.addEventListener('data', (e) => {
      window.dataGot.seqs.push(e.detail.seq);
      window.dataGot.chunks.push(e.detail.bytes.slice());
      window.dataGot.caps = e.detail.caps;
      window.dataGot.channel = e.detail.channel;
    });
    viewer.addEventListener('data-lost', (e) => window.dataGot.lost.push(e.detail));
    viewer.addEventListener('data-rejected', (e) => window.dataGot.rejected.push(e.detail));
    viewer.addEventListener('error', (e) => window.dataGot.errors.push(String(e.detail?.message ?? e.detail)));
  });
  v.parent = await waitFor(`${v.name}'s place`, () => parentOf(tree, v.id));
  assert(v.parent === 'relay-1', `${v.name} is under relay-1 (${v.parent})`);
  await playing(v);
  const key = await v.page.evaluate(() => window.peertreeViewer.dataKey);
  assert(key, `${v.name} has the tree's dataKey`);
  await waitFor(`${v.name}'s data channel to open (RESUME sent)`, () => v.page.evaluate(
    () => window.peertreeViewer.dataLink?.resumed === true));
  await childLive(relay, v);
  src.p.stdin.write(`send ${N}\n`);
  const sent = await waitFor('the source to send', () => /sent (\d+) sha256=([0-9a-f]+)/.exec(src.out));
  assert(Number(sent[1]) === N, `the source sent ${N} messages (${sent[1]})`);
  if (forged) {
    const got = await waitForPage(v, `${v.name} to reject relay-1`, () => v.page.evaluate(
      () => (window.dataGot.rejected.length ? window.dataGot.rejected[0] : null)));
    await sleep(1000);
    const st = await v.page.evaluate(() => ({ ...window.peertreeViewer.dataStats,
      delivered: window.dataGot.seqs.length }));
    console.log(`${v.name}: rejected ${got.parent} (${got.reason}: ${got.detail}); ` +
      JSON.stringify(st));
    assert(got.parent === 'relay-1' && got.reason === 'forged', 'relay-1 reported as forged');
    assert(st.forged >= 1, 'the forgery is counted');
    assert(st.delivered === 0, 'nothing forged was delivered');
    return;
  }
  await waitForData(v, N, `${v.name} to get ${N} messages`);
  await sleep(500);
  const r = await v.page.evaluate(async () => {
    const g = window.dataGot;
    const total = g.chunks.reduce((a, c) => a + c.byteLength, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of g.chunks) { all.set(c, at); at += c.byteLength; }
    const h = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
    return {
      seqs: g.seqs, total, caps: g.caps, channel: g.channel, lost: g.lost, rejected: g.rejected,
      errors: g.errors, big: g.chunks.filter((c) => c.byteLength === 65536).length,
      sha256: Array.from(h, (b) => b.toString(16).padStart(2, '0')).join(''),
      stats: window.peertreeViewer.dataStats,
    };
  });
  console.log(`${v.name}: ${r.seqs.length} messages (${r.total} bytes, ${r.big} of 64 KiB in ` +
    `fragments), seq ${r.seqs[0]}..${r.seqs[r.seqs.length - 1]}, caps ${r.caps}, ` +
    `channel ${r.channel}; ${JSON.stringify(r.stats)}`);
  assert(r.seqs.length === N, `${N} messages delivered (${r.seqs.length})`);
  assert(r.seqs.every((s, i) => s === r.seqs[0] + i), 'in order, none missing');
  assert(r.sha256 === sent[2], `byte-identical (page ${r.sha256}, source ${sent[2]})`);
  assert(r.big > 0, 'messages in fragments were joined');
  assert(r.stats.forged === 0 && r.stats.replayed === 0 && r.stats.unverified === 0 &&
    r.lost.length === 0 && r.rejected.length === 0, 'nothing rejected, lost or unverified');
  assert(r.errors.length === 0, `no error (${r.errors.join('; ')})`);
  assert(src.exited === null, 'the source still runs');
}

// The page's data while it moves: two relays under the source, the page's
// parent SIGSTOPped after 100 messages, 100 more sent, then the parent
// SIGKILLed: the page's RESUME to its new parent gets the 100 it missed from
// that parent's window, so it delivers 1..200 in order, byte-identical, none
// lost.
async function dataResumeCase (context, url, tree) {
  const src = start('source', gstPeer, [
    `peertreesink name=s server=${url} tree-id=${tree} client-id=source k1=2 k=2 data=true ` +
    `video-codec=vp8 local-addresses=127.0.0.1 ${VIDEO} ! s.video_0`], { stdin: true });
  await waitFor('the tree', async () => (await members(tree)).length === 1);
  const relays = [];
  for (const name of ['relay-1', 'relay-2']) {
    relays.push(gstRelay(url, tree, name, DATA_DEBUG));
    await waitFor(`${name} to join`, async () => (await parentOf(tree, name)) === 'source');
    await dataLive(relays[relays.length - 1], 'source');
  }
  const v = await openViewer(context, tree, 'browser-1');
  await v.page.evaluate(() => {
    window.dataGot = { seqs: [], chunks: [], lost: [], rejected: [] };
    const viewer = window.peertreeViewer;
    viewer.addEventListener('data', (e) => {
      window.dataGot.seqs.push(e.detail.seq);
      window.dataGot.chunks.push(e.detail.bytes.slice());
    });
    viewer.addEventListener('data-lost', (e) => window.dataGot.lost.push(e.detail));
    viewer.addEventListener('data-rejected', (e) => window.dataGot.rejected.push(e.detail));
  });
  const parent = await waitFor(`${v.name}'s place`, () => parentOf(tree, v.id));
  assert(parent.startsWith('relay-'), `${v.name} is under a relay (${parent})`);
  await playing(v);
  await waitFor(`${v.name}'s data channel`, () => v.page.evaluate(
    () => window.peertreeViewer.dataLink?.resumed === true));
  await childLive(relays.find((r) => r.name === parent), v);
  const batch = async (n, k) => {
    const before = src.out.length;
    src.p.stdin.write(`send ${n}\n`);
    const m = await waitFor(`batch ${k} to be sent`,
      () => /sent (\d+) sha256=([0-9a-f]+)/.exec(src.out.slice(before)));
    assert(Number(m[1]) === n, `the source sent ${n} (${m[1]})`);
    return m[2];
  };
  const h1 = await batch(100, 1);
  await waitForData(v, 100, `${v.name}'s first 100`);
  const links = await v.page.evaluate(() => window.peertreeViewer.links);
  // the relay stops (SIGSTOP: it forwards nothing more), the next 100 go out,
  // then it dies: the page gets all of them from its new parent's window
  const victim = relays.find((r) => r.name === parent);
  victim.p.kill('SIGSTOP');
  const h2 = await batch(100, 2);
  const mid = await v.page.evaluate(() => window.dataGot.seqs.length);
  assert(mid === 100, `nothing more came through the stopped ${parent} (${mid})`);
  victim.p.kill('SIGKILL');
  console.log(`stopped ${parent}, sent 100 more, killed it`);
  const now = await waitFor(`${v.name}'s new parent`, async () => {
    const p = await parentOf(tree, v.id);
    return p && p !== parent ? p : null;
  });
  await waitFor(`${v.name}'s new link`, () => v.page.evaluate(
    (n) => window.peertreeViewer.links > n && window.peertreeViewer.dataLink?.resumed, links));
  await waitForData(v, 200, `${v.name}'s 200`);
  await sleep(500);
  const r = await v.page.evaluate(async () => {
    const g = window.dataGot;
    const hash = async (chunks) => {
      const all = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
      let at = 0;
      for (const c of chunks) { all.set(c, at); at += c.byteLength; }
      const h = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
      return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
    };
    return {
      seqs: g.seqs, lost: g.lost, rejected: g.rejected, stats: window.peertreeViewer.dataStats,
      h1: await hash(g.chunks.slice(0, 100)), h2: await hash(g.chunks.slice(100)),
    };
  });
  console.log(`${v.name}: under ${now} after ${parent}'s kill: ${r.seqs.length} messages, ` +
    `seq ${r.seqs[0]}..${r.seqs[r.seqs.length - 1]}; ${JSON.stringify(r.stats)}`);
  assert(r.seqs.length === 200 && r.seqs.every((s, i) => s === i + 1), '1..200 in order');
  assert(r.h1 === h1 && r.h2 === h2, 'byte-identical on both parents');
  assert(r.lost.length === 0 && r.rejected.length === 0 && r.stats.replayed === 0 &&
    r.stats.forged === 0, 'nothing lost, replayed or forged');
}

let failed = false;
try {
  await main();
  console.log(`PASS: ${testCase}`);
} catch (e) {
  failed = true;
  console.log(`FAIL: ${testCase}: ${e.stack ?? e}`);
} finally {
  for (const n of procs.slice().reverse()) {
    if (n.exited === null) n.p.kill('SIGTERM');
  }
  await Promise.all(procs.map((n) => waitFor(`${n.name} to exit`, () => n.exited !== null, 10000)
    .catch(() => n.p.kill('SIGKILL'))));
  if (failed || keepLogs) {
    for (const n of procs) console.log(`---- ${n.name} (exit ${n.exited}) ----\n${n.out.slice(-6000)}`);
    if (pageLogs.length) console.log(`---- pages (last ${pageLogs.length} lines) ----\n${pageLogs.join('\n')}`);
  }
}
process.exit(failed ? 1 : 0);
