// Aggregator demo and monitoring page. Plain JS, no build step, no network
// access beyond this server: the page works offline and behind a sub-path.
(function () {
  'use strict';

  // ---------------------------------------------------------------- URLs
  // The directory of the page, so that /some/prefix/ behind nginx works too.
  var BASE = location.pathname.replace(/[^/]*$/, '');
  var WS_ORIGIN = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host;
  var WS_URL = WS_ORIGIN + BASE + 'ws';
  var ECHO_URL = WS_ORIGIN + BASE + 'echo';
  var STATS_URL = BASE + 'stats';

  // ---------------------------------------------------------------- scenarios
  function request(code, apikey) {
    return JSON.stringify({ code: code, brand: 'ctr', apikey: apikey || '111111', analog: 1 });
  }
  function sendCode(code) {
    return function (ws) { ws.send(request(code)); };
  }

  // What each scenario shows with the default timeouts (SPEC §6).
  var SCENARIOS = [
    { name: 'normal', expect: '3 PENDING · 9 SENDING · 3 SUCCESS' },
    { name: 'analog', expect: '5 PENDING · 15 SENDING · 5 SUCCESS (2 nested searches)' },
    { name: 'mixed', expect: '6 PENDING · 12 SENDING · 4 SUCCESS · E_SCRIPT_ERROR · E_SCRIPT_TIMEOUT' },
    { name: 'emptySuppliers', expect: 'no supplier, no task · close 1000' },
    { name: 'suppliersTimeout', expect: 'suppliers script sleeps · E_SCRIPT_TIMEOUT' },
    { name: 'suppliersError', expect: 'suppliers script exits non-zero · E_SCRIPT_ERROR' },
    { name: 'suppliersNotJson', expect: 'suppliers script prints "Not a JSON" · E_SUPPLIERS_JSON' },
    { name: 'suppliersBadResponse', expect: 'no "suppliers" array · E_SUPPLIERS_RESPONSE' },
    { name: 'emptyItems', expect: '3 PENDING · 3 SUCCESS, no items' },
    { name: 'itemsTimeout', expect: '3 PENDING · 3 × E_SCRIPT_TIMEOUT' },
    { name: 'itemsError', expect: '2 PENDING · 2 × E_SCRIPT_ERROR' },
    { name: 'itemsBadJson', expect: '2 PENDING · 2 × E_ITEMS_JSON' },
    { name: 'itemsBadResponse', expect: '2 PENDING · 2 × E_ITEMS_RESPONSE' },
    { name: 'sessionTimeout', expect: '2001 PENDING · normal-1 succeeds · E_SESSION_TIMEOUT · close 1011 (session time below script time)' },
    // Beyond SPEC §6: a handler's \Aggregator\PublicError reaches the customer as _message.
    { name: 'publicError', expect: '2 PENDING · 3 SENDING · 1 SUCCESS · refused-2 says why: E_SCRIPT_ERROR with _message' },
    { name: 'refusedApikey', expect: 'sends apikey 999 · the suppliers handler refuses it: E_SCRIPT_ERROR with _message · close 1000',
      open: function (ws) { ws.send(request('normal', '999')); } },
    { name: 'badJson', browser: true, expect: 'sends {not json · E_REQUEST_JSON · close 1008',
      open: function (ws) { ws.send('{not json'); } },
    { name: 'missingField', browser: true, expect: 'sends {"code":"normal"} · E_ILLEGAL_REQUEST · close 1008',
      open: function (ws) { ws.send(JSON.stringify({ code: 'normal' })); } },
    { name: 'secondRequest', browser: true, expect: 'sends "normal" twice · E_SESSION_REUSED, then the normal result',
      open: function (ws) { ws.send(request('normal')); ws.send(request('normal')); } },
    { name: 'closeEarly', browser: true, expect: 'sends "itemsTimeout" and closes the socket at once',
      open: function (ws, card) {
        ws.send(request('itemsTimeout'));
        card.closedBy = 'browser';
        ws.close(1000, 'closed by browser');
      } }
  ];
  SCENARIOS.forEach(function (s) { if (!s.open) s.open = sendCode(s.name); });

  var STATUSES = ['PENDING', 'SENDING', 'SUCCESS', 'ERROR'];
  var MAX_ROWS = 50;         // task rows rendered per card; the rest are summarised
  var OPEN_ITEMS = 3;        // a task's items list starts collapsed above this many
  var FRAME_BUDGET = 5000;   // messages applied per animation frame, all cards together
  var CLOSE_NAMES = {
    1000: 'normal end', 1001: 'server shutdown', 1005: 'no status', 1006: 'abnormal close',
    1008: 'bad request', 1009: 'too big', 1011: 'session timeout'
  };

  // ---------------------------------------------------------------- helpers
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtMs(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }
  function fmtNum(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
  }
  function supplierOf(info) {
    if (!info || typeof info !== 'object') return '';
    if (typeof info.supplier === 'string') return info.supplier;
    if (typeof info['class'] === 'string') return info['class'];
    return '';
  }
  function compactJSON(v) {
    try { return JSON.stringify(v); } catch (e) { return String(v); }
  }

  // ---------------------------------------------------------------- cards
  var cards = [];
  var grid = document.getElementById('scenarios');

  function makeCard(sc) {
    var root = el('article', 'card' + (sc.browser ? ' browser' : ''));
    root.id = 'card-' + sc.name;
    root.dataset.scenario = sc.name;

    var head = el('header', 'card-head');
    var title = el('h3', 'card-title', sc.name);
    if (sc.browser) title.appendChild(el('span', 'tag', 'browser'));
    var stateBadge = el('span', 'state', 'idle');
    var btn = el('button', 'run', 'Run');
    btn.type = 'button';
    btn.dataset.run = sc.name;
    head.appendChild(title);
    head.appendChild(stateBadge);
    head.appendChild(btn);
    root.appendChild(head);
    root.appendChild(el('p', 'expect', sc.expect));

    var meta = el('div', 'meta');
    function metaItem(label) {
      var span = el('span', 'meta-item');
      span.appendChild(el('span', 'meta-label', label));
      var b = el('b', 'meta-value', '–');
      span.appendChild(b);
      meta.appendChild(span);
      return b;
    }
    var sid = metaItem('session');
    var close = metaItem('close');
    var elapsed = metaItem('time');
    root.appendChild(meta);

    var countsEl = el('div', 'counts');
    var countEls = {};
    STATUSES.forEach(function (s) {
      var pill = el('span', 'pill st-' + s);
      var n = el('b', 'pill-n', '0');
      pill.appendChild(n);
      pill.appendChild(el('span', 'pill-label', s));
      countsEl.appendChild(pill);
      countEls[s] = n;
    });
    root.appendChild(countsEl);

    var sessionErrors = el('div', 'session-errors');
    root.appendChild(sessionErrors);
    var tasksEl = el('div', 'tasks');
    root.appendChild(tasksEl);
    var more = el('div', 'more');
    more.hidden = true;
    root.appendChild(more);

    var card = {
      sc: sc, el: root, btn: btn, stateBadge: stateBadge, sidEl: sid, closeEl: close,
      elapsedEl: elapsed, countEls: countEls, sessionErrorsEl: sessionErrors,
      tasksEl: tasksEl, moreEl: more, queued: false
    };
    resetModel(card);
    btn.addEventListener('click', function () { run(card); });
    grid.appendChild(root);
    return card;
  }

  function resetModel(card) {
    card.state = 'idle';
    card.ws = null;
    card.queue = [];
    card.session = '';
    card.counts = { PENDING: 0, SENDING: 0, SUCCESS: 0, ERROR: 0 };
    card.errors = [];
    card.sessionErrors = [];
    card.sessionErrorsDirty = true;
    card.tasks = new Map();
    card.order = [];
    card.taskStates = { PENDING: 0, SENDING: 0, SUCCESS: 0, ERROR: 0 };
    card.dirtyTasks = new Set();
    card.closeCode = '';
    card.closeReason = '';
    card.closedBy = '';
    card.startedAt = 0;
    card.endedAt = 0;
    card.tasksEl.textContent = '';
    card.renderedRows = 0;
  }

  // ---------------------------------------------------------------- running
  function run(card) {
    if (card.state === 'running') return;
    resetModel(card);
    card.state = 'running';
    card.startedAt = performance.now();
    var ws;
    try {
      ws = new WebSocket(WS_URL);
    } catch (e) {
      card.sessionErrors.push({ _error: 'WebSocket: ' + e.message });
      enqueue(card, { closeEvent: true, code: 1006, reason: '', at: performance.now() });
      return;
    }
    card.ws = ws;
    ws.onopen = function () {
      // The time counts from the open socket: a browser may hold back many
      // sockets opened at once for a moment before it connects them.
      card.startedAt = performance.now();
      card.sc.open(ws, card);
    };
    ws.onmessage = function (e) { enqueue(card, e.data); };
    ws.onclose = function (e) {
      enqueue(card, { closeEvent: true, code: e.code, reason: e.reason, at: performance.now() });
    };
    markDirty(card);
  }

  function sendAll() {
    cards.forEach(function (c) { if (c.state !== 'running') run(c); });
  }

  function clearAll() {
    cards.forEach(function (c) {
      if (c.state === 'running') return;
      resetModel(c);
      markDirty(c);
    });
  }

  // ---------------------------------------------------------------- batching
  // Messages are queued per card and applied once per animation frame, so a
  // burst of thousands of messages costs one render, not thousands.
  var dirty = new Set();
  var flushScheduled = false;

  function enqueue(card, msg) {
    card.queue.push(msg);
    markDirty(card);
  }
  function markDirty(card) {
    dirty.add(card);
    scheduleFlush();
  }
  function scheduleFlush() {
    if (flushScheduled) return;
    flushScheduled = true;
    requestAnimationFrame(flush);
    // rAF does not run in hidden tabs; keep going there too, just slower.
    setTimeout(flush, 250);
  }

  function flush() {
    if (!flushScheduled) return;
    flushScheduled = false;
    var budget = FRAME_BUDGET;
    var again = false;
    dirty.forEach(function (card) {
      var q = card.queue;
      var n = Math.min(q.length, Math.max(budget, 1));
      for (var i = 0; i < n; i++) apply(card, q[i]);
      budget -= n;
      card.queue = n === q.length ? [] : q.slice(n);
      render(card);
      if (card.queue.length) again = true;
    });
    dirty.forEach(function (card) { if (!card.queue.length) dirty.delete(card); });
    renderSummary();
    if (again) scheduleFlush();
  }

  function apply(card, raw) {
    if (raw && raw.closeEvent) {
      card.state = 'done';
      card.closeCode = raw.code;
      card.closeReason = raw.reason || '';
      card.endedAt = raw.at;
      card.ws = null;
      card.sessionErrorsDirty = true;
      // Tasks without a final status were dropped with the session.
      card.order.forEach(function (id, i) {
        var t = card.tasks.get(id);
        if (i < MAX_ROWS && (t.status === 'PENDING' || t.status === 'SENDING')) card.dirtyTasks.add(id);
      });
      return;
    }
    var m;
    try {
      m = JSON.parse(raw);
    } catch (e) {
      card.sessionErrors.push({ _error: 'not JSON from server', text: String(raw).slice(0, 200) });
      card.sessionErrorsDirty = true;
      return;
    }
    if (!m || typeof m !== 'object') return;
    if (m._session !== undefined && !card.session) card.session = String(m._session);
    var st = m._status;
    if (card.counts[st] !== undefined) card.counts[st]++;
    if (st === 'ERROR' && m._error) card.errors.push(String(m._error));

    if (m._task === 'SESSION' || m._id === undefined || m._id === null) {
      if (st === 'ERROR') {
        card.sessionErrors.push(m);
        card.sessionErrorsDirty = true;
      }
      return;
    }
    var t = card.tasks.get(m._id);
    if (!t) {
      t = { id: m._id, kind: m._task || '', status: '', error: '', message: '', info: null, params: null,
            items: [], itemCount: 0, index: card.order.length, el: null, renderedItems: 0 };
      card.tasks.set(m._id, t);
      card.order.push(m._id);
    }
    if (m._info !== undefined && m._info !== null) t.info = m._info;
    if (m._params !== undefined) t.params = m._params;
    if (m._task) t.kind = m._task;
    if (STATUSES.indexOf(st) >= 0 && st !== t.status) {
      if (t.status) card.taskStates[t.status]--;
      card.taskStates[st]++;
      t.status = st;
    }
    if (st === 'SENDING') {
      t.itemCount++;
      if (t.index < MAX_ROWS) t.items.push(m);
    }
    if (st === 'ERROR') {
      t.error = m._error || '';
      // What the translator tells the customer (a PublicError), when it did.
      t.message = typeof m._message === 'string' ? m._message : '';
    }
    if (t.index < MAX_ROWS) card.dirtyTasks.add(t.id);
  }

  // ---------------------------------------------------------------- rendering
  function render(card) {
    var d = card.el.dataset;
    d.state = card.state;
    d.session = card.session;
    d.closeCode = card.closeCode === '' ? '' : String(card.closeCode);
    d.closedBy = card.closedBy;
    d.pending = card.counts.PENDING;
    d.sending = card.counts.SENDING;
    d.success = card.counts.SUCCESS;
    d.error = card.counts.ERROR;
    d.errors = card.errors.slice().sort().join(',');

    card.btn.disabled = card.state === 'running';
    card.stateBadge.textContent = card.state;
    card.stateBadge.className = 'state state-' + card.state;
    card.el.classList.toggle('is-running', card.state === 'running');
    card.el.classList.toggle('is-done', card.state === 'done');
    var outcome = '';
    if (card.state === 'done') {
      if (card.closedBy === 'browser') outcome = 'browser';
      else if (card.sessionErrors.length || card.closeCode !== 1000) outcome = 'failed';
      else if (card.counts.ERROR) outcome = 'partial';
      else outcome = 'ok';
    }
    card.el.dataset.outcome = outcome;

    card.sidEl.textContent = card.session || '–';
    if (card.closeCode === '') {
      card.closeEl.textContent = '–';
      card.closeEl.title = '';
    } else {
      var name = card.closedBy === 'browser' ? 'by browser' : (CLOSE_NAMES[card.closeCode] || '');
      card.closeEl.textContent = card.closeCode + (name ? ' ' + name : '');
      card.closeEl.title = card.closeReason;
    }
    updateElapsed(card);
    STATUSES.forEach(function (s) { card.countEls[s].textContent = fmtNum(card.counts[s]); });

    if (card.sessionErrorsDirty) {
      card.sessionErrorsDirty = false;
      card.sessionErrorsEl.textContent = '';
      card.sessionErrors.forEach(function (m) {
        var box = el('div', 'session-error');
        box.appendChild(el('span', 'session-error-code', m._error || 'ERROR'));
        box.appendChild(el('span', 'session-error-scope', m._task ? m._task : 'page'));
        if (m._params) box.appendChild(el('span', 'session-error-params', compactJSON(m._params)));
        if (m.text) box.appendChild(el('span', 'session-error-params', m.text));
        card.sessionErrorsEl.appendChild(box);
      });
      if (card.state === 'done' && card.closedBy === 'browser') {
        card.sessionErrorsEl.appendChild(el('div', 'session-note',
          'closed by browser right after sending: the server drops the session\'s tasks and kills its scripts'));
      }
    }

    card.dirtyTasks.forEach(function (id) { renderTask(card, card.tasks.get(id)); });
    card.dirtyTasks.clear();

    var hidden = card.order.length - Math.min(card.order.length, MAX_ROWS);
    if (hidden > 0) {
      var shown = { PENDING: 0, SENDING: 0, SUCCESS: 0, ERROR: 0 };
      for (var i = 0; i < MAX_ROWS; i++) {
        var t = card.tasks.get(card.order[i]);
        if (shown[t.status] !== undefined) shown[t.status]++;
      }
      var parts = [];
      STATUSES.forEach(function (s) {
        var n = card.taskStates[s] - shown[s];
        if (n > 0) {
          var label = s.toLowerCase();
          if (card.state === 'done' && (s === 'PENDING' || s === 'SENDING')) label = 'dropped (' + label + ')';
          parts.push(fmtNum(n) + ' ' + label);
        }
      });
      card.moreEl.textContent = '… and ' + fmtNum(hidden) + ' more tasks' + (parts.length ? ': ' + parts.join(', ') : '');
      card.moreEl.hidden = false;
    } else {
      card.moreEl.hidden = true;
    }
  }

  function renderTask(card, t) {
    if (!t.el) {
      var row = el('div', 'task');
      row.dataset.id = t.id;
      var line = el('div', 'task-line');
      t.idEl = el('span', 'task-id', '#' + t.id);
      t.supEl = el('span', 'task-sup');
      t.badgeEl = el('span', 'badge');
      t.countEl = el('span', 'task-count');
      line.appendChild(t.idEl);
      line.appendChild(t.supEl);
      line.appendChild(t.countEl);
      line.appendChild(t.badgeEl);
      row.appendChild(line);
      t.el = row;
      card.tasksEl.appendChild(row);
    }
    var dropped = card.state === 'done' && (t.status === 'PENDING' || t.status === 'SENDING');
    var shownStatus = dropped ? 'DROPPED' : (t.status || 'PENDING');
    t.el.className = 'task st-' + shownStatus + (t.el.classList.contains('collapsed') ? ' collapsed' : '');
    t.el.dataset.status = t.status;
    var sup = supplierOf(t.info);
    if (!sup) sup = t.kind === 'SUPPLIERS' ? 'suppliers script' : (t.kind ? t.kind.toLowerCase() : '');
    t.supEl.textContent = sup;
    t.supEl.title = t.info ? '_info: ' + compactJSON(t.info) : '';
    t.badgeEl.className = 'badge st-' + shownStatus;
    t.badgeEl.textContent = shownStatus === 'ERROR' ? (t.error || 'ERROR') : shownStatus.toLowerCase();
    t.badgeEl.title = t.params ? '_params: ' + compactJSON(t.params) : '';
    t.countEl.textContent = t.itemCount ? t.itemCount + (t.itemCount === 1 ? ' item' : ' items') : '';
    if (t.message && !t.messageEl) {
      t.messageEl = el('div', 'task-message', t.message);
      t.messageEl.title = '_message: what the translator tells the customer';
      t.el.insertBefore(t.messageEl, t.el.children[1] || null);
    }

    if (t.items.length > t.renderedItems) {
      if (!t.itemsEl) {
        t.itemsEl = el('div', 'item-rows');
        t.el.appendChild(t.itemsEl);
        t.countEl.classList.add('toggle');
        t.countEl.title = 'show or hide the items';
        t.countEl.addEventListener('click', function () {
          t.userToggled = true;
          t.el.classList.toggle('collapsed');
        });
      }
      var frag = document.createDocumentFragment();
      for (var i = t.renderedItems; i < t.items.length; i++) {
        var it = t.items[i];
        var r = el('div', 'item');
        r.appendChild(el('span', 'item-code', it.code));
        r.appendChild(el('span', 'item-brand', it.brand));
        var name = el('span', 'item-name', it.name);
        name.title = it.name === undefined ? '' : String(it.name);
        r.appendChild(name);
        r.appendChild(el('span', 'item-price', it.price));
        r.appendChild(el('span', 'item-qty', it.quantity !== undefined ? '×' + it.quantity : ''));
        frag.appendChild(r);
      }
      t.itemsEl.appendChild(frag);
      t.renderedItems = t.items.length;
    }
    // Many items start collapsed; a click on the count shows them.
    if (t.itemsEl && !t.userToggled) t.el.classList.toggle('collapsed', t.items.length > OPEN_ITEMS);
  }

  function updateElapsed(card) {
    if (!card.startedAt) { card.elapsedEl.textContent = '–'; return; }
    var end = card.state === 'done' ? card.endedAt : performance.now();
    card.elapsedEl.textContent = fmtMs(end - card.startedAt);
  }

  var summaryEl = document.getElementById('summary');
  function renderSummary() {
    var running = 0, done = 0;
    cards.forEach(function (c) {
      if (c.state === 'running') running++;
      else if (c.state === 'done') done++;
    });
    summaryEl.textContent = cards.length + ' scenarios · ' + running + ' running · ' + done + ' done';
  }

  setInterval(function () {
    cards.forEach(function (c) { if (c.state === 'running') updateElapsed(c); });
  }, 100);

  // ---------------------------------------------------------------- stats
  var statsEl = document.getElementById('stats');
  var statsStatus = document.getElementById('stats-status');
  var STAT_KEYS = ['uptime', 'sessionTotal', 'sessionAlive', 'sessionFinished',
                   'taskTotal', 'taskPending', 'taskSucceeded', 'taskFailed'];
  var statEls = {};
  STAT_KEYS.forEach(function (k) { statEls[k] = document.getElementById('stat-' + k); });
  var polls = 0;

  var WINDOW = 300; // seconds shown in the chart
  var series = { t: [], alive: [], pending: [], finished: [] };
  var prev = null;
  var chart = null;

  function showStats(s) {
    polls++;
    statsEl.dataset.polls = polls;
    STAT_KEYS.forEach(function (k) {
      var v = s[k];
      if (v === undefined) return;
      statEls[k].textContent = typeof v === 'number' ? fmtNum(v) : String(v);
      statsEl.dataset[k] = String(v);
    });
    statsStatus.textContent = 'updated ' + new Date().toLocaleTimeString();
    statsStatus.className = 'stats-status ok';
  }

  function addPoint(s) {
    var now = Date.now() / 1000;
    var finished = (s.taskSucceeded || 0) + (s.taskFailed || 0);
    var rate = null;
    if (prev && now > prev.at && finished >= prev.finished) {
      rate = (finished - prev.finished) / (now - prev.at);
      rate = Math.round(rate * 10) / 10;
    }
    prev = { at: now, finished: finished };
    series.t.push(now);
    series.alive.push(s.sessionAlive);
    series.pending.push(s.taskPending);
    series.finished.push(rate);
    while (series.t.length && series.t[0] < now - WINDOW) {
      series.t.shift(); series.alive.shift(); series.pending.shift(); series.finished.shift();
    }
    if (chart) {
      chart.setData([series.t, series.alive, series.pending, series.finished]);
      // Without the mouse over the chart, the legend shows the latest values.
      if (!(chart.cursor.left >= 0)) chart.setLegend({ idx: series.t.length - 1 });
    }
  }

  function pollStats() {
    var started = performance.now();
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, 10000) : 0;
    fetch(STATS_URL, { cache: 'no-store', signal: ctl ? ctl.signal : undefined })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (s) { showStats(s); addPoint(s); })
      .catch(function (e) {
        statsStatus.textContent = 'unreachable: ' + (e && e.message ? e.message : e);
        statsStatus.className = 'stats-status bad';
      })
      .then(function () {
        // One request in flight at a time: the next starts after this one ends.
        clearTimeout(timer);
        setTimeout(pollStats, Math.max(0, 1000 - (performance.now() - started)));
      });
  }

  function makeChart() {
    var box = document.getElementById('chart');
    if (typeof uPlot !== 'function') {
      box.textContent = 'chart library not loaded';
      return;
    }
    function upTo(min) {
      return function (u, lo, hi) { return [0, Math.max(min, Math.ceil((hi || 0) * 1.1))]; };
    }
    var opts = {
      width: Math.max(300, box.clientWidth),
      height: 170,
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: function (u, lo, hi) {
          // The last 5 minutes, or less while there is less history (at least 1 minute).
          var end = series.t.length ? series.t[series.t.length - 1] : Date.now() / 1000;
          var first = series.t.length ? series.t[0] : end;
          return [Math.max(end - WINDOW, Math.min(first, end - 60)), end];
        } },
        tasks: { range: upTo(10) },
        sessions: { range: upTo(5) }
      },
      series: [
        { label: 'time', value: '{HH}:{mm}:{ss}' },
        { label: 'sessions alive', scale: 'sessions', stroke: '#2f6fde', width: 2, value: fmtVal },
        { label: 'tasks pending', scale: 'tasks', stroke: '#8e5bd6', fill: 'rgba(142,91,214,0.12)', width: 1.5, value: fmtVal },
        { label: 'tasks finished/s', scale: 'tasks', stroke: '#1e9e5a', width: 1.5, value: fmtVal }
      ],
      axes: [
        { stroke: '#5b6577', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e2e5eb' } },
        { scale: 'tasks', stroke: '#5b6577', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e2e5eb' }, size: 50 },
        { scale: 'sessions', side: 1, stroke: '#2f6fde', grid: { show: false }, ticks: { stroke: '#e2e5eb' }, size: 40 }
      ]
    };
    chart = new uPlot(opts, [series.t, series.alive, series.pending, series.finished], box);
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(function () {
        var w = Math.max(300, box.clientWidth);
        if (w !== chart.width) chart.setSize({ width: w, height: 170 });
      }).observe(box);
    }
  }
  function fmtVal(u, v) { return v === null || v === undefined ? '–' : fmtNum(v); }

  // ---------------------------------------------------------------- echo
  var echoWs = null;
  var echoPending = [];
  var echoOut = document.getElementById('echo-output');
  var echoStatus = document.getElementById('echo-status');

  function echoLine(dir, text) {
    var li = el('li', 'echo-' + dir);
    li.dataset.dir = dir;
    li.appendChild(el('span', 'echo-dir', dir === 'out' ? 'sent' : dir === 'in' ? 'echoed' : 'note'));
    li.appendChild(el('span', 'echo-text', text));
    echoOut.insertBefore(li, echoOut.firstChild);
    while (echoOut.children.length > 20) echoOut.removeChild(echoOut.lastChild);
  }

  function echoConnect() {
    var ws = new WebSocket(ECHO_URL);
    echoWs = ws;
    echoStatus.textContent = 'connecting…';
    ws.onopen = function () {
      echoStatus.textContent = 'connected';
      echoStatus.className = 'echo-status ok';
      echoPending.forEach(function (m) { ws.send(m); });
      echoPending = [];
    };
    ws.onmessage = function (e) { echoLine('in', e.data); };
    ws.onclose = function (e) {
      if (echoWs === ws) echoWs = null;
      echoStatus.textContent = 'closed (' + e.code + ')';
      echoStatus.className = 'echo-status';
    };
  }

  document.getElementById('echo-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var input = document.getElementById('echo-input');
    var text = input.value;
    if (!text) return;
    echoLine('out', text);
    if (echoWs && echoWs.readyState === WebSocket.OPEN) {
      echoWs.send(text);
    } else {
      echoPending.push(text);
      if (!echoWs) echoConnect();
    }
  });

  // ---------------------------------------------------------------- start
  document.getElementById('ws-url').textContent = WS_URL;
  document.getElementById('echo-url').textContent = ECHO_URL;
  SCENARIOS.forEach(function (sc) { cards.push(makeCard(sc)); });
  cards.forEach(render);
  renderSummary();
  document.getElementById('send-all').addEventListener('click', sendAll);
  document.getElementById('clear-all').addEventListener('click', clearAll);
  makeChart();
  pollStats();

  // For tests and the curious: window.aggregatorDemo.cards[i].el.dataset …
  window.aggregatorDemo = { cards: cards, run: run, sendAll: sendAll, wsURL: WS_URL };
})();
