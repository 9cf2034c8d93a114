// peertree-server's dashboard: reads GET /dashboard/events (server-sent
// events, through fetch so that an admin token can go in an Authorization
// header) and draws every tree in SVG: the source on top, each member under
// its parent, one row per depth, and on each link the figures its child
// reported (bitrate, loss, RTT, frames per second). No framework, no build.
// docs/dashboard.md describes the events.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const NODE_W = 120;      // horizontal room per leaf
  const ROW_H = 96;        // vertical room per depth
  const TOP = 28;
  const STALE_MS = 10000;  // a report older than this is drawn grey

  const trees = new Map();          // id -> tree (as the server sent it)
  const sections = new Map();       // id -> <section>
  let token = null;
  let retryMs = 2000;

  const $ = (id) => document.getElementById(id);

  // A token given as /dashboard#token=… stays in this tab only, and leaves
  // the address bar (it is never sent in a URL).
  function readToken () {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem('peertree-token', decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname);
    }
    token = sessionStorage.getItem('peertree-token');
  }

  function setState (text, up) {
    $('state').textContent = text;
    $('state').className = up ? '' : 'down';
  }

  function el (name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function figures (r) {
    if (!r) return [];
    const a = [];
    if (r.bitrateKbps !== undefined) a.push(r.bitrateKbps + ' kbps');
    if (r.lossPercent !== undefined) a.push(r.lossPercent.toFixed(1) + '% loss');
    const b = [];
    if (r.rttMs !== undefined) b.push(r.rttMs + ' ms');
    if (r.framesPerSecond !== undefined) b.push(r.framesPerSecond.toFixed(0) + ' fps');
    return [a.join(' · '), b.join(' · ')].filter((s) => s);
  }

  function linkColour (r) {
    if (!r || r.lossPercent === undefined) return '#9aa3b2';
    if (r.ageMs > STALE_MS) return '#c3c8d1';
    if (r.lossPercent < 1) return '#2e7d32';
    if (r.lossPercent < 5) return '#ed8b00';
    return '#b3261e';
  }

  // Lays the tree out: leaves side by side, each parent above the middle of
  // its children.
  function layout (tree) {
    const kids = new Map();
    for (const m of tree.members) kids.set(m.id, []);
    for (const m of tree.members)
      if (m.parent !== null && kids.has(m.parent)) kids.get(m.parent).push(m.id);
    const pos = new Map();
    let next = 0;
    let maxDepth = 0;
    const place = (id, depth) => {
      maxDepth = Math.max(maxDepth, depth);
      const c = kids.get(id) || [];
      if (c.length === 0) {
        pos.set(id, { x: next++ * NODE_W + NODE_W / 2, depth });
      } else {
        for (const k of c) place(k, depth + 1);
        const xs = c.map((k) => pos.get(k).x);
        pos.set(id, { x: (Math.min(...xs) + Math.max(...xs)) / 2, depth });
      }
    };
    place(tree.root, 0);
    return { pos, leaves: Math.max(next, 1), maxDepth };
  }

  function draw (tree) {
    const { pos, leaves, maxDepth } = layout(tree);
    const byId = new Map(tree.members.map((m) => [m.id, m]));
    const width = leaves * NODE_W + 60;
    const height = TOP + (maxDepth + 1) * ROW_H;
    const svg = el('svg', { width, height, viewBox: `-60 0 ${width} ${height}`,
      role: 'img', 'aria-label': `tree ${tree.id}` });
    const y = (d) => TOP + d * ROW_H;
    for (let d = 0; d <= maxDepth; d++) {
      svg.appendChild(el('line', { class: 'depth', x1: -60, x2: width, y1: y(d), y2: y(d) }));
      svg.appendChild(el('text', { class: 'depth', x: -55, y: y(d) - 4 }, 'depth ' + d));
    }
    for (const m of tree.members) {               // links, under the nodes
      if (m.parent === null || !pos.has(m.parent) || !pos.has(m.id)) continue;
      const p = pos.get(m.parent), c = pos.get(m.id);
      svg.appendChild(el('line', { class: 'link', x1: p.x, y1: y(p.depth), x2: c.x,
        y2: y(c.depth), stroke: linkColour(m.report) }));
      const lines = figures(m.report);
      lines.forEach((t, i) => svg.appendChild(el('text', { class: 'figures',
        x: c.x + 4, y: y(c.depth) - 44 + i * 12, 'text-anchor': 'start' }, t)));
    }
    for (const [id, p] of pos) {
      const m = byId.get(id);
      const g = el('g', { class: 'node', 'data-id': id });
      const isRoot = id === tree.root;
      if (isRoot)
        g.appendChild(el('rect', { x: p.x - 14, y: y(p.depth) - 14, width: 28, height: 28,
          fill: tree.sourceLost ? '#f4c7c3' : '#90caf9' }));
      else
        g.appendChild(el('circle', { cx: p.x, cy: y(p.depth), r: 12, fill: '#e3f2e1' }));
      const shown = id.length > 16 ? id.slice(0, 15) + '…' : id;
      g.appendChild(el('text', { x: p.x, y: y(p.depth) + 28, 'text-anchor': 'middle' }, shown));
      const r = m && m.report;
      const info = [id, isRoot ? 'source' : 'parent ' + m.parent, 'depth ' + p.depth];
      if (r && r.childCount !== undefined) info.push(r.childCount + ' child links up');
      info.push(...figures(r));
      if (r) info.push('reported ' + Math.round(r.ageMs / 1000) + ' s ago');
      g.appendChild(el('title', {}, info.join('\n')));
      svg.appendChild(g);
    }
    return svg;
  }

  function render (id) {
    const tree = trees.get(id);
    let s = sections.get(id);
    if (!tree) {
      if (s) s.remove();
      sections.delete(id);
    } else {
      if (!s) {
        s = document.createElement('section');
        s.className = 'tree';
        s.dataset.tree = id;
        sections.set(id, s);
        const after = [...sections.keys()].sort().find((k) => k > id && sections.get(k).isConnected);
        $('trees').insertBefore(s, after ? sections.get(after) : null);
      }
      const h = document.createElement('h2');
      h.textContent = 'tree ' + tree.id;
      const meta = document.createElement('span');
      meta.className = 'meta' + (tree.sourceLost ? ' lost' : '');
      meta.textContent = `${tree.size} members · k=${tree.k}, k1=${tree.k1}` +
        (tree.sourceLost ? ' · source lost, waiting for it' : '') +
        (tree.truncated ? ` · first ${tree.members.length} shown` : '');
      h.appendChild(meta);
      s.replaceChildren(h, draw(tree));
    }
    $('empty').style.display = trees.size ? 'none' : '';
  }

  function onEvent (name, data) {
    let d;
    try { d = JSON.parse(data); } catch (e) { return; }
    if (name === 'server') {
      $('clients').textContent = 'clients: ' + d.clients;
      $('ntrees').textContent = 'trees: ' + d.trees;
    } else if (name === 'tree') {
      trees.set(d.id, d);
      render(d.id);
    } else if (name === 'tree-closed') {
      trees.delete(d.id);
      render(d.id);
    } else if (name === 'reports') {
      const tree = trees.get(d.tree);
      if (!tree) return;
      for (const m of tree.members)
        if (d.reports[m.id]) m.report = d.reports[m.id];
      render(d.tree);
    }
  }

  // One SSE block: "event:", "data:" and "retry:" lines; ":" is a comment.
  function onBlock (block) {
    let name = 'message';
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (data.length) onEvent(name, data.join('\n'));
  }

  async function connect () {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    let delay = retryMs;
    try {
      const res = await fetch('/dashboard/events', { headers, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        setState(res.status === 401 ? 'token needed' : 'token is not admin', false);
        $('auth').style.display = 'block';
        return;                    // the form calls connect() again
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      $('auth').style.display = 'none';
      setState('live', true);
      // a new snapshot follows: forget what it will not list
      for (const id of [...trees.keys()]) { trees.delete(id); render(id); }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
          onBlock(block);
        }
      }
      setState('reconnecting…', false);
    } catch (e) {
      setState('down: ' + e.message + '; retrying', false);
      delay = Math.min(retryMs * 2, 10000);
    }
    setTimeout(connect, delay);
  }

  $('auth').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem('peertree-token', token);
    $('token').value = '';
    connect();
  });

  readToken();
  connect();
})();
