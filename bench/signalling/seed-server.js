// The Node.js anchor: the seed project's server, @gigasource/socket.io-p2p-plugin
// 1.12.1 on socket.io 2.x with its defaults, as its examples start it.
//   node --expose-gc seed-server.js [PORT]     (0 or nothing: a free port)
// Prints "seed-server listening on http://127.0.0.1:PORT" once listening.
// GET /gc runs a full garbage collection and answers process.memoryUsage(), so
// a benchmark can read the process's RSS at its smallest.
'use strict';
const path = require('path');
const {createRequire} = require('module');
const req = createRequire(path.join(__dirname, '..', 'node', 'package.json'));
const http = require('http');
const socketIO = req('socket.io');
const {p2pServerPlugin} = req('@gigasource/socket.io-p2p-plugin');

const port = Number(process.argv[2] || 0);
const httpServer = http.createServer((request, response) => {
  if (request.url === '/gc') {
    if (global.gc) global.gc();
    response.setHeader('Content-Type', 'application/json');
    response.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  response.statusCode = 404;
  response.end();
});
const io = socketIO(httpServer, {});
p2pServerPlugin(io);
// The plugin prints an error per emit to a client it cannot find; keep quiet
// unless asked (a benchmark may race a disconnect).
if (!process.env.SEED_VERBOSE) console.error = () => {};

httpServer.listen(port, '127.0.0.1', () => {
  console.log(`seed-server listening on http://127.0.0.1:${httpServer.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
