// peertree.js — the JavaScript client of peertree-server (docs/protocol.md),
// an ES module without dependencies, served by the server as /peertree.js.
// SPDX-License-Identifier: LGPL-2.1-or-later
//
//   PeerTreeClient: the WebSocket, hello, requests and replies, reconnection,
//     the message API (emit with ack, targets, rooms, services, topics) and
//     the tree requests.
//   PeerTreeViewer: a leaf of a tree that plays the stream its parent sends
//     in a <video>, and takes a new parent when the server gives one.
//
// docs/javascript.md documents both.

export const PROTOCOL_VERSION = 1;

/** An error reply of the server (code: one of protocol.md's error codes). */
export class PeerTreeError extends Error {
  constructor (code, message) {
    super(message || code);
    this.name = 'PeerTreeError';
    this.code = code;
  }
}

function randomHex (bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The server's WebSocket URL for a page it served: same host, ws or wss. */
export function defaultServerUrl (loc = globalThis.location) {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/';
}

/**
 * A received emit, service call, target or stream request: answer it once
 * with reply(value) or fail(message). Unanswered, the sender's request ends
 * with the server's timeout.
 */
export class PeerTreeMessage {
  constructor (client, ev) {
    this.client = client;
    this.from = ev.from;
    this.name = ev.name ?? ev.method ?? null;
    this.args = ev.args ?? [];
    this.room = ev.room ?? null;
    this.service = ev.service ?? null;
    this.ackId = ev.ackId ?? null;
    this.answered = this.ackId === null;
  }

  get needsReply () { return !this.answered; }

  reply (value = null) { return this.#answer(true, value); }

  fail (message = 'refused') { return this.#answer(false, message); }

  #answer (ok, v) {
    if (this.answered) return Promise.resolve();
    this.answered = true;
    const fields = { ackId: this.ackId, ok };
    if (ok) fields.value = v;
    else fields.error = { message: String(v) };
    return this.client.request('reply', fields).catch(() => {});
  }
}

/**
 * The connection to peertree-server. Events (EventTarget, each a
 * CustomEvent whose detail is given):
 *   connected {clientId, k, k1, iceServers}   after every successful hello
 *   disconnected {code, reason}               the socket closed (reconnects if enabled)
 *   message PeerTreeMessage                    an emit or a room-emit to us (cancelable:
 *                                              preventDefault() to answer an ack later)
 *   error PeerTreeError                        an error reply to a noReply request
 *   tree (the server's event object)           upstream, downstream-added/-removed,
 *                                              tree-closed, source-lost, placed
 *   signal {treeId, from, data}                SDP or ICE from a neighbour
 *   rejoined {treeId, parent, depth}           back in a tree after a reconnection
 *   topic {service, topic, args}, topic-destroyed {service, topic}
 *   target-disconnected {clientId}
 *   event (the raw event object)               every event, before the above
 */
export class PeerTreeClient extends EventTarget {
  constructor (url = defaultServerUrl(), options = {}) {
    super();
    this.url = url;
    this.clientId = options.clientId ?? null;
    this.secret = options.secret ?? randomHex(16);
    this.token = options.token ?? null;
    this.reconnect = options.reconnect ?? true;
    this.requestTimeout = options.requestTimeout ?? 30000;
    this.k = 0;
    this.k1 = 0;
    this.iceServers = [];
    this.ws = null;
    this.connected = false;
    this.closed = false;
    this.nextId = 1;
    this.pending = new Map();          // id -> {resolve, reject, timer}
    this.services = new Map();         // service name -> handler(PeerTreeMessage)
    this.handlers = new Map();         // event name of an emit -> [handler]
    this.trees = new Map();            // treeId -> {parent, leaf}
    this.onTargetRequest = null;       // (PeerTreeMessage) => accept?; default: accept
    this.backoff = 250;
    this.connecting = null;
  }

  /** Opens the socket and says hello; resolves with the hello result. */
  connect () {
    if (this.connecting) return this.connecting;
    this.closed = false;
    this.connecting = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let helloDone = false;
      ws.onopen = () => {
        const hello = { version: PROTOCOL_VERSION, secret: this.secret };
        if (this.clientId) hello.clientId = this.clientId;
        if (this.token) hello.token = this.token;
        this.request('hello', hello).then((r) => {
          helloDone = true;
          this.clientId = r.clientId;
          this.k = r.k;
          this.k1 = r.k1;
          this.iceServers = r.iceServers ?? [];
          this.connected = true;
          this.backoff = 250;
          this.#afterReconnect();
          this.#fire('connected', r);
          resolve(r);
        }, (e) => {
          this.connecting = null;
          reject(e);
          ws.close();
        });
      };
      ws.onmessage = (e) => {
        if (typeof e.data !== 'string') return;   // streams: not in this client
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        if (msg.type === 'reply') this.#onReply(msg);
        else if (msg.type === 'event') this.#onEvent(msg);
      };
      ws.onclose = (e) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.connected = false;
        this.connecting = null;
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new PeerTreeError('closed', 'connection closed'));
        }
        this.pending.clear();
        // the server withdrew our services with the connection
        for (const [, s] of this.services) s.registered = false;
        if (!helloDone) reject(new PeerTreeError('closed', `connection closed (${e.code})`));
        this.#fire('disconnected', { code: e.code, reason: e.reason });
        if (this.reconnect && !this.closed && helloDone) this.#scheduleReconnect();
      };
    });
    return this.connecting;
  }

  /** Closes the connection for good (no reconnection). */
  close () {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }

  #scheduleReconnect () {
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    setTimeout(() => {
      if (this.closed || this.ws) return;
      this.connect().catch(() => { if (!this.closed && !this.ws) this.#scheduleReconnect(); });
    }, delay);
  }

  // After a reconnection (the server may have restarted): back into our
  // trees, and provide our services again (rooms and subscriptions ended
  // with the connection: the application joins them again on 'connected').
  // A member that takes children reports its place (rejoin); a leaf joins
  // again, since rejoin has no leaf flag, retrying while its tree is not
  // back (a restarted server waits source-grace seconds for the source).
  #afterReconnect () {
    for (const [treeId, t] of this.trees) {
      if (!t.leaf && t.parent) {
        this.request('rejoin', { treeId, parent: t.parent, children: [] }).then((r) => {
          if (r.parent) this.#rejoined(treeId, r);
        }, () => {});
        continue;
      }
      const attempt = (left) => {
        if (!this.connected || !this.trees.has(treeId)) return;
        this.request('join', { treeId, leaf: true }).then((r) => this.#rejoined(treeId, r),
          (e) => {
            if (e.code === 'tree-not-found' && left > 0) setTimeout(() => attempt(left - 1), 1000);
            else this.#fire('tree', { event: 'tree-closed', treeId, reason: e.code });
          });
      };
      attempt(15);
    }
    for (const [service, s] of this.services) {
      if (!s.registered) {
        this.request('service-provide', s.methods ? { service, methods: s.methods } : { service })
          .then(() => { s.registered = true; }, () => {});
      }
    }
  }

  #fire (name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  /**
   * Sends request @type with @fields; resolves with its result object, or
   * rejects with a PeerTreeError. noReply: resolves at once (errors are
   * still replied and reported on the 'error' event).
   */
  request (type, fields = {}, { noReply = false, timeout = this.requestTimeout } = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new PeerTreeError('closed', 'not connected'));
    }
    const id = this.nextId++;
    const msg = { type, id, ...fields };
    if (noReply) msg.noReply = true;
    if (noReply) {
      // no reply when it succeeds; an error reply still comes, and is
      // reported as an 'error' event while we remember the id
      const timer = setTimeout(() => this.pending.delete(id), timeout);
      this.pending.set(id, { resolve: () => {}, reject: (e) => this.#fire('error', e), timer });
      ws.send(JSON.stringify(msg));
      return Promise.resolve({});
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PeerTreeError('timeout', `${type}: no reply`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify(msg));
    });
  }

  #onReply (msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result ?? {});
    else p.reject(new PeerTreeError(msg.error?.code ?? 'error', msg.error?.message));
  }

  #onEvent (ev) {
    this.#fire('event', ev);
    switch (ev.event) {
      case 'message': {
        const m = new PeerTreeMessage(this, ev);
        const list = this.handlers.get(ev.name) ?? [];
        for (const h of list) this.#answerWith(m, () => h(...m.args, m));
        // a listener that will answer later calls preventDefault()
        const claimed = !this.dispatchEvent(new CustomEvent('message', { detail: m, cancelable: true }));
        if (m.needsReply && list.length === 0 && !claimed) {
          // nobody will answer: fail the sender's emit now rather than on its timeout
          m.fail(`no handler for ${ev.name}`);
        }
        break;
      }
      case 'service-call': {
        const m = new PeerTreeMessage(this, ev);
        const s = this.services.get(ev.service);
        if (!s) { m.fail(`service ${ev.service} not provided here`); break; }
        this.#answerWith(m, () => s.handler(ev.method, m.args, m));
        break;
      }
      case 'target-request': {
        const m = new PeerTreeMessage(this, ev);
        Promise.resolve(this.onTargetRequest ? this.onTargetRequest(m) : true).then(
          (ok) => (ok ? m.reply(null) : m.fail('refused')), (e) => m.fail(String(e)));
        break;
      }
      case 'stream-request':
        // byte streams (binary frames) are not implemented by this client
        new PeerTreeMessage(this, ev).fail('streams are not supported by peertree.js');
        break;
      case 'topic':
      case 'topic-destroyed':
      case 'target-disconnected':
        this.#fire(ev.event, ev);
        break;
      case 'signal':
        this.#fire('signal', ev);
        break;
      case 'upstream':
      case 'placed':
        this.#setParent(ev.treeId, ev.parent, ev.depth);
        this.#fire('tree', ev);
        break;
      case 'tree-closed':
        this.trees.delete(ev.treeId);
        this.#fire('tree', ev);
        break;
      default:
        this.#fire('tree', ev);
        break;
    }
  }

  // Runs @fn (a handler) and replies with what it returns (or throws), if
  // the message still needs a reply.
  #answerWith (m, fn) {
    let v;
    try { v = fn(); } catch (e) { m.fail(e?.message ?? String(e)); return; }
    Promise.resolve(v).then((value) => { if (m.needsReply) m.reply(value ?? null); },
      (e) => { if (m.needsReply) m.fail(e?.message ?? String(e)); });
  }

  #rejoined (treeId, r) {
    this.#setParent(treeId, r.parent, r.depth);
    this.#fire('rejoined', { treeId, parent: r.parent, depth: r.depth, dataKey: r.dataKey ?? null });
  }

  #setParent (treeId, parent, depth) {
    const t = this.trees.get(treeId);
    if (t) { t.parent = parent; t.depth = depth; }
  }

  // ---- identity ----
  listClients (prefix = '', limit = 100) { return this.request('list-clients', { prefix, limit }); }
  async isConnected (clientId) { return (await this.request('is-connected', { clientId })).connected; }

  // ---- emit ----
  /**
   * Emits @event with @args to @to. With ack, resolves with the receiver's
   * reply value; without, once the server queued it; with noReply (no ack),
   * at once (an error still comes, as an 'error' event).
   */
  async emit (to, event, args = [], { ack = false, timeout, noReply = false } = {}) {
    const f = { to, event, args };
    if (ack) { f.ack = true; if (timeout) f.timeout = timeout; }
    const opts = { noReply: noReply && !ack };
    if (ack && timeout) opts.timeout = timeout + 5000;
    const r = await this.request('emit', f, opts);
    return ack ? r.value : undefined;
  }

  /** Handles emits named @event: handler(...args, message); its return value (or
   * promise) is the ack reply. Returns a function that removes it. */
  on (event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return () => {
      const l = this.handlers.get(event) ?? [];
      const i = l.indexOf(handler);
      if (i >= 0) l.splice(i, 1);
    };
  }

  addTarget (target) { return this.request('add-target', { target }); }

  // ---- rooms ----
  roomJoin (room) { return this.request('room-join', { room }); }
  roomLeave (room) { return this.request('room-leave', { room }); }
  async roomEmit (room, event, args = []) {
    return (await this.request('room-emit', { room, event, args })).delivered;
  }

  async listRooms (clientId) {
    return (await this.request('list-rooms', clientId ? { clientId } : {})).rooms;
  }

  // ---- services and topics ----
  /** Provides @service: handler(method, args, message) returns the value (or a
   * promise); methods (optional) restricts the methods callers may use. */
  async provide (service, handler, methods = null) {
    const s = { handler, methods, registered: false };
    this.services.set(service, s);
    try {
      await this.request('service-provide', methods ? { service, methods } : { service });
      s.registered = true;
    } catch (e) {
      this.services.delete(service);
      throw e;
    }
  }

  async withdraw (service) {
    this.services.delete(service);
    await this.request('service-withdraw', { service });
  }

  async call (service, method, args = [], { timeout } = {}) {
    const f = { service, method, args };
    if (timeout) f.timeout = timeout;
    return (await this.request('service-call', f, timeout ? { timeout: timeout + 5000 } : {})).value;
  }

  topicCreate (service, topic) { return this.request('topic-create', { service, topic }); }
  topicDestroy (service, topic) { return this.request('topic-destroy', { service, topic }); }
  async topicPublish (service, topic, args = []) {
    return (await this.request('topic-publish', { service, topic, args })).delivered;
  }

  topicSubscribe (service, topic) { return this.request('topic-subscribe', { service, topic }); }
  topicUnsubscribe (service, topic) { return this.request('topic-unsubscribe', { service, topic }); }

  // ---- trees ----
  /** Joins @treeId; a leaf (the default) never gets children. Resolves with
   * {treeId, parent, depth}. */
  async join (treeId, { leaf = true } = {}) {
    const r = await this.request('join', leaf ? { treeId, leaf: true } : { treeId });
    this.trees.set(treeId, { parent: r.parent, depth: r.depth, leaf });
    return r;
  }

  async leave (treeId) {
    this.trees.delete(treeId);
    await this.request('leave', { treeId });
  }

  async reconnectUpstream (treeId) {
    const r = await this.request('reconnect-upstream', { treeId });
    this.#setParent(treeId, r.parent, r.depth);
    return r;
  }

  /** Relays an SDP (type 'offer' or 'answer') or an ICE candidate to a
   * neighbour in @treeId (the parent or a child only). */
  sendSdp (treeId, to, type, sdp) {
    return this.request('signal', { treeId, to, data: { sdp: { type, sdp } } });
  }

  sendIce (treeId, to, mline, candidate) {
    return this.request('signal', { treeId, to, data: { ice: { mline, candidate } } });
  }
}

// ---- data down the tree (docs/protocol.md, Data down the tree; gst/pt-data.c) ----
export const DATA_CHANNEL_LABEL = 'peertree-data';
const DATA_VERSION = 1;
const KIND_DATA = 0;
const KIND_RESUME = 1;
const KIND_FRAGMENT = 2;
const DATA_HEADER = 22;
const DATA_SIG = 64;
const DATA_MAX_CAPS = 1024;
const DATA_MAX_PAYLOAD = 65536;
const DATA_MAX_FRAME = DATA_HEADER + DATA_MAX_CAPS + DATA_MAX_PAYLOAD + DATA_SIG;
const FRAG_HEADER = 12;
const FRAG_MAX = 4;
const FRAG_SLOTS = 4;            // messages in pieces at a time, per parent link
const RESUME_NEW = 0x01;
const SEEN_WINDOW = 1024;        // unordered channels: as pt-data.c's replay window
const SIGN_CONTEXT = new TextEncoder().encode('peertree-data-1\0');
const NO_PTS = 0xffffffffffffffffn;

function base64Bytes (b64) {
  const s = atob(b64);
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}

// A DATA message's fields, or null if it is not one (as pt-data.c's parse_data).
function parseData (f) {
  const len = f.byteLength;
  if (len < DATA_HEADER + DATA_SIG || len > DATA_MAX_FRAME || f[0] !== DATA_VERSION ||
    f[1] !== KIND_DATA) return null;
  const dv = new DataView(f.buffer, f.byteOffset, len);
  const seq = dv.getBigUint64(2);
  const pts = dv.getBigUint64(10);
  const channel = dv.getUint16(18);
  const capsLen = dv.getUint16(20);
  if (capsLen > DATA_MAX_CAPS || DATA_HEADER + capsLen + DATA_SIG > len) return null;
  const payloadLen = len - DATA_HEADER - capsLen - DATA_SIG;
  if (payloadLen > DATA_MAX_PAYLOAD || seq === 0n || seq > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return {
    seq: Number(seq),
    pts: pts === NO_PTS ? null : Number(pts),
    channel,
    caps: new TextDecoder().decode(f.subarray(DATA_HEADER, DATA_HEADER + capsLen)),
    bytes: f.subarray(DATA_HEADER + capsLen, len - DATA_SIG),
  };
}

// A FRAGMENT into @slots; the whole message once every piece is in, else
// null. Bounded: FRAG_SLOTS messages of at most DATA_MAX_FRAME bytes, the
// oldest (lowest number) given up for a new one (as pt-data.c's add_fragment).
function addFragment (slots, f) {
  if (f.byteLength <= FRAG_HEADER || f[0] !== DATA_VERSION) return null;
  const seq = new DataView(f.buffer, f.byteOffset, f.byteLength).getBigUint64(2);
  const index = f[10];
  const count = f[11];
  if (count < 2 || count > FRAG_MAX || index >= count) return null;
  let slot = slots.find((s) => s.count && s.seq === seq);
  if (!slot) {
    slot = slots.find((s) => !s.count) ??
      slots.reduce((a, b) => (b.seq < a.seq ? b : a));
    slot.seq = seq;
    slot.count = count;
    slot.pieces = [];
  }
  if (slot.count !== count || slot.pieces[index]) return null;
  slot.pieces[index] = f.slice(FRAG_HEADER);
  let total = 0;
  for (const p of slot.pieces) total += p ? p.byteLength : 0;
  if (total > DATA_MAX_FRAME) { slot.count = 0; slot.pieces = []; return null; }
  for (let i = 0; i < count; i++) if (!slot.pieces[i]) return null;
  const whole = new Uint8Array(total);
  let at = 0;
  for (const p of slot.pieces) { whole.set(p, at); at += p.byteLength; }
  slot.count = 0;
  slot.pieces = [];
  return whole;
}

// An ICE connection "disconnected" this long is a lost parent (as the
// GStreamer viewer does, gst/pt-upstream.c).
const DISCONNECTED_MS = 2000;

// The SDP session id (o= line) of an offer: a new one from the same parent
// is a new peer connection, not a renegotiation.
function sdpSessionId (sdp) {
  const m = /^o=\S+ (\S+) /m.exec(sdp);
  return m ? m[1] : null;
}

/**
 * What Chromium refuses in an offer of a GStreamer relay, made acceptable:
 * an audio m-line with an RTX ssrc-group (webrtcbin offers NACK and RTX on
 * audio too, docs/repair.md; Chromium's audio receiver takes one SSRC, and
 * setRemoteDescription fails with "Failed to add remote stream ssrc").
 * Without the group and the RTX SSRC's lines the browser just does not ask
 * for audio repairs (Opus FEC covers it).
 */
export function browserOffer (sdp) {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const sections = sdp.split(/\r?\n(?=m=)/);
  return sections.map((sec) => {
    if (!sec.startsWith('m=audio')) return sec;
    const drop = new Set();
    for (const m of sec.matchAll(/^a=ssrc-group:FID (\d+) (\d+)\s*$/gm)) drop.add(m[2]);
    if (drop.size === 0) return sec;
    return sec.split(/\r?\n/).filter((line) => {
      if (line.startsWith('a=ssrc-group:FID ')) return false;
      const m = /^a=ssrc:(\d+) /.exec(line);
      return !(m && drop.has(m[1]));
    }).join(eol);
  }).join(eol);
}

/**
 * A viewer: joins @treeId (as a leaf by default) and plays what its parent
 * sends in @video. Events (CustomEvent detail):
 *   joined {treeId, parent, depth}
 *   parent {parent, depth, reason}    a new parent (re-parenting)
 *   track {track, streams}            a remote track of the current link
 *   state {state}                     the link's RTCPeerConnection state
 *   closed {reason}                   the tree closed
 *   error Error
 *   data {seq, pts, channel, caps, bytes}   a message of the tree's data, verified
 *                                     against its dataKey, in order (docs/javascript.md)
 *   data-lost {seq, count}            @count messages before @seq will never come
 *   data-rejected {parent, reason, detail}   the parent sent forged or replayed
 *                                     data: dropped, and reported (report-relay)
 */
export class PeerTreeViewer extends EventTarget {
  constructor ({ treeId, video = null, client = null, url, token, clientId, leaf = true,
    iceServers = null, rtcConfig = {} }) {
    super();
    this.treeId = treeId;
    this.video = video;
    this.client = client ?? new PeerTreeClient(url ?? defaultServerUrl(), { token, clientId });
    this.leaf = leaf;
    this.iceServers = iceServers;
    this.rtcConfig = rtcConfig;
    this.parent = null;
    this.depth = 0;
    this.pc = null;
    this.session = null;
    this.stream = null;
    this.links = 0;               // peer connections made so far
    this.reparentings = 0;        // parents given by the server after the first
    this.lost = false;
    this.reconnecting = false;
    this.disconnectedTimer = null;
    this.queue = Promise.resolve();
    this.stopped = false;
    // data down the tree: the key (base64), what was delivered, counters
    this.dataKey = null;
    this.dataCryptoKey = null;      // a promise of the CryptoKey of dataKey
    this.dataLink = null;           // the current parent link's data channel
    this.dataQueue = Promise.resolve();
    this.dataLastSeq = 0;           // the last delivered
    this.dataKnowStart = false;     // a gap after dataLastSeq is a loss
    this.dataResumedOnce = false;
    this.dataSeenTop = 0;           // unordered channels: the highest seen,
    this.dataSeenFirst = 0;         // the first, and those seen in the window
    this.dataSeen = new Set();
    this.dataUnverifiable = false;  // no Ed25519 in this browser: nothing is delivered
    this.dataStats = {
      received: 0, delivered: 0, forged: 0, replayed: 0, lost: 0, malformed: 0, unverified: 0,
    };
    this.onSignal = (e) => this.#onSignal(e.detail);
    this.onTree = (e) => this.#onTree(e.detail);
    this.onConnected = () => { if (this.lost) this.#requestNewParent(); };
    // back after a reconnection: the (new) parent offers a new link
    this.onRejoined = (e) => {
      if (e.detail.treeId !== this.treeId || this.stopped) return;
      this.depth = e.detail.depth;
      if (e.detail.dataKey) this.#setDataKey(e.detail.dataKey);
      // under another parent: a new link; under the same one, either the
      // link lives on (a rejoin it confirmed) or its offer of a new session
      // makes a new one
      this.#setParent(e.detail.parent, false);
      this.#fire('parent', { parent: e.detail.parent, depth: e.detail.depth, reason: 'rejoined' });
    };
  }

  async start () {
    this.client.addEventListener('signal', this.onSignal);
    this.client.addEventListener('tree', this.onTree);
    this.client.addEventListener('connected', this.onConnected);
    this.client.addEventListener('rejoined', this.onRejoined);
    if (!this.client.connected) await this.client.connect();
    const r = await this.client.join(this.treeId, { leaf: this.leaf });
    if (r.dataKey) this.#setDataKey(r.dataKey);
    this.depth = r.depth;
    this.#setParent(r.parent, false);
    this.#fire('joined', r);
    return r;
  }

  async stop () {
    this.stopped = true;
    this.#closeLink();
    this.client.removeEventListener('signal', this.onSignal);
    this.client.removeEventListener('tree', this.onTree);
    this.client.removeEventListener('connected', this.onConnected);
    this.client.removeEventListener('rejoined', this.onRejoined);
    try { await this.client.leave(this.treeId); } catch { /* gone already */ }
  }

  #fire (name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  #onTree (ev) {
    if (ev.treeId !== this.treeId || this.stopped) return;
    if (ev.event === 'upstream') {
      this.depth = ev.depth;
      // a new link even to the same parent when the old one is lost
      this.#setParent(ev.parent, this.lost || ev.parent !== this.parent);
      this.reparentings++;
      this.#fire('parent', { parent: ev.parent, depth: ev.depth, reason: ev.reason });
    } else if (ev.event === 'data-key') {
      this.#setDataKey(ev.dataKey);
    } else if (ev.event === 'tree-closed') {
      this.#closeLink();
      this.parent = null;
      this.#fire('closed', { reason: ev.reason });
    }
  }

  #setParent (parent, force) {
    if (!force && parent === this.parent) return;
    this.#closeLink();
    this.parent = parent;
    this.lost = false;
  }

  #closeLink () {
    clearTimeout(this.disconnectedTimer);
    this.disconnectedTimer = null;
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.oniceconnectionstatechange = null;
      this.pc.ondatachannel = null;
      this.pc.close();
    }
    if (this.dataLink) {
      this.dataLink.gone = true;
      this.dataLink.channel.onmessage = null;
      this.dataLink.channel.onopen = null;
    }
    this.dataLink = null;
    this.pc = null;
    this.session = null;
    this.queue = Promise.resolve();
  }

  #newLink () {
    this.#closeLink();
    const config = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', ...this.rtcConfig };
    const servers = this.iceServers ?? this.client.iceServers;
    if (servers && servers.length) config.iceServers = servers;
    const pc = new RTCPeerConnection(config);
    const parent = this.parent;
    this.pc = pc;
    this.links++;
    // the <video> keeps the old stream until the new link's first track
    this.stream = new MediaStream();
    pc.onicecandidate = (e) => {
      // null (or an empty candidate): end of candidates, nothing to relay
      if (!e.candidate || !e.candidate.candidate) return;
      const c = e.candidate;
      this.client.sendIce(this.treeId, parent, c.sdpMLineIndex ?? 0, c.candidate).catch(() => {});
    };
    pc.ontrack = (e) => {
      this.stream.addTrack(e.track);
      if (this.video && this.video.srcObject !== this.stream) {
        this.video.srcObject = this.stream;
        this.video.play().catch(() => {});
      }
      this.#fire('track', { track: e.track, streams: e.streams });
    };
    pc.oniceconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.iceConnectionState;
      if (s === 'failed') {
        this.#parentLost('ICE failed');
      } else if (s === 'disconnected') {
        clearTimeout(this.disconnectedTimer);
        this.disconnectedTimer = setTimeout(() => {
          if (this.pc === pc && pc.iceConnectionState === 'disconnected') {
            this.#parentLost('ICE disconnected');
          }
        }, DISCONNECTED_MS);
      } else if (s === 'connected' || s === 'completed') {
        clearTimeout(this.disconnectedTimer);
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.pc === pc) this.#fire('state', { state: pc.connectionState });
    };
    pc.ondatachannel = (e) => {
      if (this.pc === pc && e.channel.label === DATA_CHANNEL_LABEL) this.#dataChannel(e.channel, parent);
    };
    return pc;
  }

  // ---- data ----

  // The tree's key: a new one is a new source, which numbers from 1 again.
  #setDataKey (key) {
    if (!key || key === this.dataKey) return;
    if (this.dataKey) {
      this.dataLastSeq = 0;
      this.dataKnowStart = false;
      this.dataResumedOnce = false;
      this.dataSeenTop = 0;
      this.dataSeen.clear();
    }
    this.dataKey = key;
    const subtle = globalThis.crypto?.subtle;
    this.dataCryptoKey = subtle
      ? subtle.importKey('raw', base64Bytes(key), { name: 'Ed25519' }, false, ['verify'])
      : Promise.reject(new Error('no WebCrypto (crypto.subtle needs a secure context: https or localhost)'));
    this.dataCryptoKey.catch((e) => {
      if (this.dataKey !== key) return;
      this.dataUnverifiable = true;
      this.#fire('error', new Error(`the tree's data cannot be verified, none is delivered: ${e.message}`));
    });
  }

  // The parent link's channel: RESUME once it opens, then its messages in order.
  #dataChannel (channel, parent) {
    channel.binaryType = 'arraybuffer';
    const link = {
      channel, parent, ordered: channel.ordered, resumed: false, reported: false, gone: false,
      frags: Array.from({ length: FRAG_SLOTS }, () => ({ seq: 0n, count: 0, pieces: [] })),
    };
    if (this.dataLink) this.dataLink.gone = true;
    this.dataLink = link;
    channel.onopen = () => this.#sendResume(link);
    channel.onmessage = (e) => {
      if (link.gone || !(e.data instanceof ArrayBuffer)) return;
      let f = new Uint8Array(e.data);
      if (f.byteLength > 1 && f[1] === KIND_FRAGMENT) {
        f = addFragment(link.frags, f);
        if (!f) return;
      }
      // verification is asynchronous: one message at a time, in order
      this.dataQueue = this.dataQueue.then(() => this.#onParentData(link, f))
        .catch((err) => this.#fire('error', err));
    };
    if (channel.readyState === 'open') this.#sendResume(link);
  }

  #sendResume (link) {
    if (link.resumed || link.gone || link.channel.readyState !== 'open') return;
    const f = new Uint8Array(11);
    f[0] = DATA_VERSION;
    f[1] = KIND_RESUME;
    new DataView(f.buffer).setBigUint64(2, BigInt(this.dataLastSeq));
    f[10] = this.dataResumedOnce ? 0 : RESUME_NEW;
    try {
      link.channel.send(f);
    } catch (e) {
      this.#fire('error', e);
      return;
    }
    link.resumed = true;
    // a member that moved misses whatever its new parent does not resend
    if (this.dataResumedOnce) this.dataKnowStart = true;
    this.dataResumedOnce = true;
  }

  // unordered channels: true if @seq is new (and notes it); lost.n gets the
  // numbers that left the window unseen
  #seenNote (seq, lost) {
    lost.n = 0;
    if (this.dataSeenTop === 0) {
      this.dataSeenTop = seq;
      this.dataSeenFirst = seq;
      this.dataSeen.add(seq);
      return true;
    }
    if (seq > this.dataSeenTop) {
      // the numbers that leave the window unseen are lost (from the first
      // this member saw: not those before it came)
      const top = this.dataSeenTop;
      const from = Math.max(top - SEEN_WINDOW + 1, this.dataSeenFirst);
      const to = seq - SEEN_WINDOW;
      for (let n = from; n <= Math.min(to, top); n++) {
        if (!this.dataSeen.delete(n)) lost.n++;
      }
      if (to > top) lost.n += to - top;
      this.dataSeenTop = seq;
      this.dataSeen.add(seq);
      return true;
    }
    if (this.dataSeenTop - seq >= SEEN_WINDOW || this.dataSeen.has(seq)) return false;
    this.dataSeen.add(seq);
    return true;
  }

  async #onParentData (link, f) {
    if (link.gone || link.reported || link !== this.dataLink) return;
    const st = this.dataStats;
    st.received++;
    const m = parseData(f);
    let reason = null;
    let detail = null;
    let lost = 0;
    if (!m) {
      st.malformed++;
      st.forged++;
      reason = 'forged';
      detail = `a malformed message of ${f.byteLength} bytes`;
    } else {
      let ok = false;
      try {
        const key = await this.dataCryptoKey;
        if (!key) throw new Error('no dataKey for the tree');
        const tree = new TextEncoder().encode(this.treeId);
        const signed = new Uint8Array(SIGN_CONTEXT.length + tree.length + 1 + f.byteLength - DATA_SIG);
        signed.set(SIGN_CONTEXT, 0);
        signed.set(tree, SIGN_CONTEXT.length);
        signed.set(f.subarray(0, f.byteLength - DATA_SIG), SIGN_CONTEXT.length + tree.length + 1);
        ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, f.subarray(f.byteLength - DATA_SIG), signed);
      } catch {
        // cannot verify (no key, no Ed25519 here): fail closed, not the parent's fault
        st.unverified++;
        return;
      }
      if (link.gone || link.reported || link !== this.dataLink) return;
      if (!ok) {
        st.forged++;
        reason = 'forged';
        detail = `message ${m.seq} does not carry the source's signature`;
      } else if (link.ordered) {
        if (m.seq <= this.dataLastSeq) {
          st.replayed++;
          reason = 'replayed';
          detail = `message ${m.seq} again (${this.dataLastSeq} delivered)`;
        } else if (this.dataKnowStart && m.seq > this.dataLastSeq + 1) {
          lost = m.seq - this.dataLastSeq - 1;
        }
      } else {
        const l = { n: 0 };
        if (!this.#seenNote(m.seq, l)) {
          st.replayed++;
          reason = 'replayed';
          detail = `message ${m.seq} again, or older than the window`;
        }
        lost = l.n;
      }
    }
    if (reason) {
      // once per link: its messages are dropped from now on, and the server
      // is told (it places us elsewhere)
      link.reported = true;
      this.#fire('data-rejected', { parent: link.parent, reason, detail });
      this.client.request('report-relay', { treeId: this.treeId, relay: link.parent, reason })
        .catch((e) => this.#fire('error', e));
      return;
    }
    if (lost) {
      st.lost += lost;
      this.#fire('data-lost', { seq: m.seq, count: lost });
    }
    if (m.seq > this.dataLastSeq) this.dataLastSeq = m.seq;
    this.dataKnowStart = true;
    st.delivered++;
    this.#fire('data', m);
  }

  #parentLost (reason) {
    if (this.lost) return;
    this.lost = true;
    this.#fire('error', new Error(`lost the parent ${this.parent}: ${reason}`));
    this.#requestNewParent();
  }

  #requestNewParent () {
    if (this.reconnecting || this.stopped || !this.client.connected) return;
    this.reconnecting = true;
    // the upstream event, or this reply, gives the new parent
    this.client.reconnectUpstream(this.treeId).then((r) => {
      if (r.dataKey) this.#setDataKey(r.dataKey);
      this.depth = r.depth;
      this.#setParent(r.parent, true);
    }, (e) => this.#fire('error', e)).finally(() => { this.reconnecting = false; });
  }

  // SDP and ICE from the parent, in order (one promise chain per link).
  #onSignal (ev) {
    if (ev.treeId !== this.treeId || this.stopped) return;
    const data = ev.data ?? {};
    if (data.sdp) {
      if (data.sdp.type !== 'offer') return;   // a leaf has no children to answer it
      const session = sdpSessionId(data.sdp.sdp);
      if (ev.from !== this.parent) {
        // the server relays only between neighbours: the parent changed first
        this.parent = ev.from;
      }
      if (!this.pc || (this.session && session !== this.session) || this.lost) {
        this.lost = false;
        this.#newLink();
      }
      this.session = session;
      const pc = this.pc;
      const parent = this.parent;
      this.queue = this.queue.then(async () => {
        await pc.setRemoteDescription({ type: 'offer', sdp: browserOffer(data.sdp.sdp) });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.#fire('answer', { sdp: pc.localDescription.sdp });
        await this.client.sendSdp(this.treeId, parent, 'answer', pc.localDescription.sdp);
      }).catch((e) => { if (this.pc === pc) this.#fire('error', e); });
    } else if (data.ice && this.pc && ev.from === this.parent) {
      const { mline, candidate } = data.ice;
      if (!candidate) return;                   // end-of-candidates
      const pc = this.pc;
      this.queue = this.queue.then(() => pc.addIceCandidate({ candidate, sdpMLineIndex: mline }))
        .catch((e) => { if (this.pc === pc) this.#fire('error', e); });
    }
  }

  /** Decoded frames so far (the <video>'s playback quality), or 0. */
  get decodedFrames () {
    const q = this.video?.getVideoPlaybackQuality?.();
    return q ? q.totalVideoFrames : 0;
  }
}
