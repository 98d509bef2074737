// The shop's search written in Node.js alone, no PHP: what a team would
// otherwise write in an afternoon (`ws` 8.23 from npm, Node 20's built-in
// fetch), for aggbench's shop part to measure beside the aggregator and
// bench/goshop: the same suppliers, mapping and messages (SPEC §4).
//
//   SHOP_SUPPLIERS=sup01=http://127.0.0.1:PORT,... node server.js
//
// It prints the address it listens on, then serves /ws.
'use strict';

const http = require('node:http');
const { WebSocketServer } = require('ws');

const MARKUP = 1.18;
const API_KEY = 'bench-key';
const SUPPLIER_TIME = 5000; // ms, the aggregator's task time
const SESSION_TIME = 30000;
const REQUEST_FIELDS = ['code', 'brand', 'apikey', 'analog'];

const suppliers = (process.env.SHOP_SUPPLIERS || '').split(',').filter((p) => p.includes('=')).map((p) => {
  const i = p.indexOf('=');
  return { name: p.slice(0, i), url: p.slice(i + 1) };
});
if (suppliers.length === 0) {
  console.error('nodeshop: SHOP_SUPPLIERS names no supplier');
  process.exit(1);
}

let sessions = 0;
let tasks = 0;

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({ server, path: '/ws', maxPayload: 64 * 1024 });

wss.on('connection', (ws) => {
  ws.once('message', (data) => search(ws, data.toString()));
});

async function search(ws, raw) {
  const session = String(++sessions);
  let req;
  try {
    req = JSON.parse(raw);
  } catch {
    req = null;
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    return refuse(ws, session, 'E_REQUEST_JSON');
  }
  if (!REQUEST_FIELDS.every((f) => f in req)) {
    return refuse(ws, session, 'E_ILLEGAL_REQUEST');
  }
  const deadline = AbortSignal.timeout(SESSION_TIME);
  const heads = suppliers.map((s) => ({ _session: session, _task: 'ITEMS', _id: ++tasks, _info: { supplier: s.name } }));
  for (const h of heads) {
    ws.send(JSON.stringify({ ...h, _status: 'PENDING' }));
  }
  await Promise.all(suppliers.map((s, i) => ask(ws, s, heads[i], String(req.code), String(req.brand), deadline)));
  ws.close(1000);
}

async function ask(ws, supplier, head, code, brand, deadline) {
  const url = `${supplier.url}/search?code=${encodeURIComponent(code)}&brand=${encodeURIComponent(brand)}`;
  let parts;
  try {
    const res = await fetch(url, {
      headers: { 'X-Api-Key': API_KEY, Accept: 'application/json' },
      signal: AbortSignal.any([deadline, AbortSignal.timeout(SUPPLIER_TIME)]),
    });
    if (res.status === 503) {
      await res.body?.cancel();
      return send(ws, { ...head, _status: 'ERROR', _error: 'E_SCRIPT_ERROR', _message: 'the supplier is unavailable (503), try again later' });
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`${supplier.name} answered ${res.status}`);
    }
    parts = (await res.json()).parts || [];
  } catch (e) {
    const code = e.name === 'TimeoutError' ? 'E_SCRIPT_TIMEOUT' : 'E_SCRIPT_ERROR';
    return send(ws, { ...head, _status: 'ERROR', _error: code });
  }
  for (const p of parts) {
    if (p.stock <= 0 || p.stock < p.min_order) {
      continue;
    }
    send(ws, {
      code: p.number.trim(),
      brand: p.maker.trim(),
      name: p.title.trim(),
      price: Math.round(p.price * MARKUP * 100) / 100,
      currency: p.currency,
      quantity: p.stock,
      multiplicity: p.multiplicity,
      delivery: p.delivery_days,
      warehouse: p.warehouse,
      supplier: supplier.name,
      ...head,
      _status: 'SENDING',
    });
  }
  send(ws, { ...head, _status: 'SUCCESS' });
}

function send(ws, message) {
  if (ws.readyState === ws.OPEN) {
    ws.send(JSON.stringify(message));
  }
}

function refuse(ws, session, code) {
  send(ws, { _session: session, _task: 'SESSION', _status: 'ERROR', _error: code });
  ws.close(1008);
}

server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(`${a.address}:${a.port}`);
});
