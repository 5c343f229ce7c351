// A real WebSocket server (the `ws` package) for the agent's EUnit tests.
//
// Usage: node ws_echo_server.mjs [--port N] [--tls CERT KEY] [--token T]
//
// Prints one JSON object per line on stdout; the first is
// {"ev":"listening","port":N}. Reads JSON commands, one per line, on stdin,
// and exits when stdin closes (so an Erlang port that closes it stops us).
//
// Paths:
//   /echo               echo every message back (text as text, binary as binary)
//   /headers            first send {"path","headers"} of the upgrade request, then echo
//   /fragments          send one text message in three fragments with a ping between them
//   /big?n=N            send one text message of N bytes ("x" repeated), then echo
//   /ping               send a ping "hello-ping"; answer the pong with text "pong:<data>"
//   /close?code=C&reason=R   close at once with that code and reason
//   /reject?status=S&body=B  refuse the upgrade with HTTP S and a one-line body
//   /reject-chunked?status=S&body=B  same, chunked body
//   /badaccept          answer 101 with a wrong Sec-WebSocket-Accept
//   /raw?hex=H          complete the handshake, then write the raw bytes H
//   /silent             accept and never send anything
//   /agent              beamdeck protocol: answer `hello` with `welcome`
//
// With --token T every path needs `Authorization: Bearer T`; others get 401
// with the body "invalid agent token".
//
// Commands: {"cmd":"send","id":N,"data":"text"}  {"cmd":"close","id":N,"code":C,"reason":R}
//           {"cmd":"ping","id":N,"data":"x"}     {"cmd":"terminate","id":N}
//           {"cmd":"pause","id":N}  {"cmd":"resume","id":N}   {"cmd":"exit"}
// "id" may be omitted: the last connection is meant.
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(opt('--port') ?? 0);
const token = opt('--token');
const tlsAt = args.indexOf('--tls');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptKey = (key) => createHash('sha1').update(key + GUID).digest('base64');

const server = tlsAt >= 0
  ? createHttps({ cert: readFileSync(args[tlsAt + 1]), key: readFileSync(args[tlsAt + 2]) })
  : createHttp();
server.on('error', (err) => { out({ ev: 'error', message: String(err) }); process.exit(1); });
server.on('tlsClientError', (err) => out({ ev: 'tlsClientError', message: String(err) }));

const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024 });
const conns = new Map();
let nextId = 1;
let lastId = 0;

function reject(socket, status, body, chunked) {
  const line = `${body}\n`;
  const head = chunked
    ? `HTTP/1.1 ${status} Refused\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
      + `${Buffer.byteLength(line).toString(16)}\r\n${line}\r\n0\r\n\r\n`
    : `HTTP/1.1 ${status} Refused\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(line)}\r\nConnection: close\r\n\r\n${line}`;
  socket.end(head);
  socket.on('error', () => {});
}

server.on('upgrade', (req, socket, head) => {
  socket.on('error', (err) => out({ ev: 'socketError', message: String(err) }));
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
    out({ ev: 'rejected', path, status: 401 });
    reject(socket, 401, 'invalid agent token', false);
    return;
  }
  if (path === '/reject' || path === '/reject-chunked') {
    const status = Number(url.searchParams.get('status') ?? 401);
    out({ ev: 'rejected', path, status });
    reject(socket, status, url.searchParams.get('body') ?? 'refused', path === '/reject-chunked');
    return;
  }
  if (path === '/badaccept' || path === '/raw') {
    const accept = path === '/badaccept' ? acceptKey('not-the-key') : acceptKey(req.headers['sec-websocket-key']);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    if (path === '/raw') socket.write(Buffer.from(url.searchParams.get('hex') ?? '', 'hex'));
    out({ ev: 'raw', path });
    socket.on('data', (d) => out({ ev: 'rawData', hex: d.toString('hex') }));
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, url));
});

function onConnection(ws, req, url) {
  const id = nextId++;
  lastId = id;
  conns.set(id, ws);
  const path = url.pathname;
  out({ ev: 'connection', id, path, headers: req.headers });
  ws.on('error', (err) => out({ ev: 'wsError', id, message: String(err) }));
  ws.on('close', (code, reason) => {
    conns.delete(id);
    out({ ev: 'close', id, code, reason: reason.toString() });
  });
  ws.on('pong', (data) => {
    out({ ev: 'pong', id, data: data.toString() });
    if (path === '/ping') ws.send(`pong:${data.toString()}`);
  });
  ws.on('ping', (data) => out({ ev: 'ping', id, data: data.toString() }));
  ws.on('message', (data, isBinary) => {
    const size = data.length;
    const sha256 = createHash('sha256').update(data).digest('hex');
    const rec = { ev: 'message', id, binary: isBinary, size, sha256 };
    if (!isBinary && size <= 65536) rec.text = data.toString();
    out(rec);
    if (path === '/agent') {
      let frame;
      try { frame = JSON.parse(data.toString()); } catch { ws.close(4400, 'not json'); return; }
      if (frame.type === 'hello') {
        ws.send(JSON.stringify({ type: 'welcome', protocol: 1, lastEventSeq: 0, serverTime: Date.now() }));
      }
      return;
    }
    if (path !== '/silent') ws.send(data, { binary: isBinary });
  });

  if (path === '/headers') ws.send(JSON.stringify({ path: req.url, headers: req.headers }));
  if (path === '/fragments') {
    ws.send('frag-one|', { fin: false });
    ws.ping('mid');
    ws.send('frag-two|', { fin: false });
    ws.send('frag-three', { fin: true });
  }
  if (path === '/big') ws.send('x'.repeat(Number(url.searchParams.get('n') ?? 100000)));
  if (path === '/ping') ws.ping('hello-ping');
  if (path === '/close') {
    ws.close(Number(url.searchParams.get('code') ?? 1000), url.searchParams.get('reason') ?? '');
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { out({ ev: 'badCommand', line }); return; }
  if (cmd.cmd === 'exit') { process.exit(0); }
  const ws = conns.get(cmd.id ?? lastId);
  if (!ws) { out({ ev: 'noConnection', cmd: cmd.cmd }); return; }
  switch (cmd.cmd) {
    case 'send': ws.send(cmd.data); break;
    case 'close': ws.close(cmd.code, cmd.reason); break;
    case 'ping': ws.ping(cmd.data ?? ''); break;
    case 'terminate': ws.terminate(); break;
    case 'pause': ws.pause(); break;
    case 'resume': ws.resume(); break;
    default: out({ ev: 'badCommand', line });
  }
  out({ ev: 'done', cmd: cmd.cmd });
});
rl.on('close', () => process.exit(0));

server.listen(port, '127.0.0.1', () => out({ ev: 'listening', port: server.address().port }));
