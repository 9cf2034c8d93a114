// Stream throughput through the seed's Node server with the seed's own stream
// API (@gigasource/socket.io-p2p-plugin 1.12.1: addP2pStream / onAddP2pStream,
// Node Duplex streams relayed as acknowledged socket.io events).
//   node seed-stream.js http://127.0.0.1:PORT MEGABYTES SERVER_PID [SECONDS]
// Two clients in this process: "stream-src" writes MEGABYTES MiB of
// incompressible bytes in 64 KiB writes (waiting for 'drain' when write()
// says so), then end(); "stream-dst" counts bytes until 'end'. Stops after
// SECONDS (default 60). Prints "RESULT bytes=.. secs=.. mb_per_s=.. cpu_s=..".
'use strict';
const path = require('path');
const fs = require('fs');
const crypto = require('crypto');
const {createRequire} = require('module');
const req = createRequire(path.join(__dirname, '..', 'node', 'package.json'));
const ioClient = req('socket.io-client');
const {p2pClientPlugin} = req('@gigasource/socket.io-p2p-plugin');

const [url, mbArg, pidArg, secsArg] = process.argv.slice(2);
if (!url || !/^http:\/\/(127\.0\.0\.1|localhost):/.test(url) || !mbArg || !pidArg) {
  console.error('usage: node seed-stream.js http://127.0.0.1:PORT MEGABYTES SERVER_PID [SECONDS]');
  process.exit(2);
}
const total = Number(mbArg) * 1024 * 1024;
const limitMs = Number(secsArg || 60) * 1000;
const CHUNK = 64 * 1024;
const pattern = crypto.randomBytes(CHUNK);
const ticks = 100; // USER_HZ on Linux

function serverCpu() {
  const stat = fs.readFileSync(`/proc/${pidArg}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks;
}

function connect(clientId) {
  return new Promise((resolve, reject) => {
    const raw = ioClient.connect(`${url}?clientId=${clientId}`, {transports: ['websocket']});
    raw.once('connect', () => resolve(p2pClientPlugin(raw, clientId)));
    raw.once('connect_error', reject);
  });
}

(async () => {
  const src = await connect('stream-src');
  const dst = await connect('stream-dst');
  let received = 0;
  let t0, cpu0, finished = false;

  const finish = (complete) => {
    if (finished) return;
    finished = true;
    const secs = (Date.now() - t0) / 1000;
    const cpu = serverCpu() - cpu0;
    const mb = received / 1e6;
    console.log(`RESULT bytes=${received} secs=${secs.toFixed(3)} mb_per_s=${(mb / secs).toFixed(1)}` +
        ` cpu_s=${cpu.toFixed(3)} cpu_ms_per_mb=${mb > 0 ? (cpu * 1e3 / mb).toFixed(3) : 0}` +
        ` complete=${complete && received === total ? 1 : 0}`);
    src.disconnect();
    dst.disconnect();
    setTimeout(() => process.exit(0), 100);
  };

  dst.onAddP2pStream('bench', (duplex) => {
    duplex.on('data', (chunk) => { received += chunk.length; });
    duplex.on('end', () => finish(true));
  });

  cpu0 = serverCpu();
  t0 = Date.now();
  setTimeout(() => finish(false), limitMs).unref();
  const duplex = await src.addP2pStream('stream-dst', 'bench', {});
  let sent = 0;
  const writeMore = () => {
    while (sent < total && !finished) {
      const n = Math.min(CHUNK, total - sent);
      sent += n;
      if (!duplex.write(n === CHUNK ? pattern : pattern.subarray(0, n))) {
        duplex.once('drain', writeMore);
        return;
      }
    }
    if (sent >= total) duplex.end();
  };
  writeMore();
})().catch((e) => { console.error(`seed-stream: ${e}`); process.exit(1); });
