/* global document, location, history, sessionStorage, URLSearchParams, fetch, WebSocket, TextEncoder */
// The pvblk dashboard: one WebSocket to the host (/dashboard/ws), opened with the operator token,
// and a page rebuilt from each message. The token comes from the URL's fragment (#token=…), which a
// browser never sends to a server; it is kept in sessionStorage and removed from the address bar.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get('token')) {
  sessionStorage.setItem('pvblk-token', fragment.get('token'));
  history.replaceState(null, '', location.pathname);
}
const token = sessionStorage.getItem('pvblk-token');

function setStatus(text, ok) {
  const s = $('#status');
  s.textContent = text;
  s.className = `status ${ok ? 'ok' : 'bad'}`;
}

// ---- counters and their rates ------------------------------------------------------------------
const previous = new Map(); // key → { value, time }
function rate(key, value, time) {
  const p = previous.get(key);
  previous.set(key, { value, time });
  if (!p || time <= p.time || value < p.value) return '';
  return `${(((value - p.value) * 1000) / (time - p.time)).toFixed(1)}/s`;
}

// ---- domains (xl list's columns, and the hypervisor's tables) ----------------------------------
function stateLetters(d) {
  return (
    (d.running ? 'r' : '-') +
    (d.blocked ? 'b' : '-') +
    (d.paused ? 'p' : '-') +
    (d.shutdown ? 's' : '-') +
    '-' +
    (d.dying ? 'd' : '-')
  );
}

function renderDomains(s) {
  const hv = new Map((s.hypervisor?.domains ?? []).map((d) => [d.domid, d]));
  const body = $('#domains tbody');
  body.replaceChildren(
    ...s.domains.map((d) => {
      const h = hv.get(d.domid) ?? { stats: {}, xenstore: {} };
      const cells = [
        d.name,
        d.domid,
        Math.floor(d.memKb / 1024),
        d.vcpus,
        stateLetters(d),
        d.cpuSeconds.toFixed(1),
        h.grants,
        h.grantsMapped,
        h.mappings,
        h.sharedFrames,
        h.ports,
        h.stats.eventsSent,
        h.stats.eventsDelivered,
        h.xenstore.nodes,
      ];
      return el(
        'tr',
        { 'data-domid': String(d.domid), 'data-name': d.name },
        ...cells.map((c) => el('td', { text: String(c ?? '') })),
      );
    }),
  );
}

// ---- vbds ---------------------------------------------------------------------------------------
const SHOWN = [
  'rd_req',
  'wr_req',
  'f_req',
  'ds_req',
  'oo_req',
  'rd_sect',
  'wr_sect',
  'errors',
  'notify_received',
  'grant_maps',
  'grant_copies',
  'persistent_grants',
  'pi_tuples',
  'pi_errors',
];

function renderVbds(s) {
  const box = $('#vbds');
  if (s.vbds.length === 0) return box.replaceChildren(el('p', { text: 'no vbds' }));
  box.replaceChildren(
    ...s.vbds.map((v) => {
      const key = `${v.domid}/${v.devid}`;
      const counters = el(
        'div',
        { class: 'counters' },
        ...SHOWN.map((k) => {
          const r = rate(`${key}/${k}`, v.stats[k], s.time);
          return el(
            'div',
            { class: 'counter' },
            `${k} `,
            el('b', { 'data-counter': `${key}/${k}`, text: String(v.stats[k]) }),
            ' ',
            el('span', { class: 'rate', text: r }),
          );
        }),
      );
      const rings = v.rings.map((r) => {
        const bar = el('div', { class: 'bar' }, el('div'));
        bar.firstChild.style.width = `${Math.min(100, (100 * r.occupancy) / r.size)}%`;
        return el(
          'div',
          { class: 'ring', 'data-ring': `${key}/${r.queue}` },
          `ring ${r.queue}: ${r.occupancy}/${r.size} in use`,
          bar,
          `req_prod ${r.reqProd} req_cons ${r.reqCons} rsp_prod ${r.rspProd} req_event ${r.reqEvent} rsp_event ${r.rspEvent}`,
        );
      });
      const title = `vbd-${v.domid}-${v.devid} (${v.vdev} of domain ${v.domid}): ${v.state}${v.readOnly ? ', read-only' : ''}${v.persistent ? ', persistent grants' : ''}${v.integrity ? `, ${v.integrity}` : ''}`;
      return el('div', { class: 'vbd', 'data-vbd': key }, el('h3', { text: title }), counters, ...rings);
    }),
  );
}

function renderDisks(s) {
  $('#disks tbody').replaceChildren(
    ...s.disks.map((d) =>
      el(
        'tr',
        { 'data-disk': d.path },
        ...[
          d.path,
          d.guest,
          d.hctl,
          d.params,
          d.stats.commands,
          d.stats.mediumErrors,
          d.stats.difErrors,
          d.stats.timeouts,
        ].map((c) => el('td', { text: String(c) })),
      ),
    ),
  );
}

function renderPi(s) {
  $('#pi tbody').replaceChildren(
    ...s.vbds.map((v) =>
      el(
        'tr',
        {},
        el('td', { text: `vbd-${v.domid}-${v.devid}` }),
        el('td', { text: String(v.stats.pi_caught_backend) }),
        el('td', { text: String(v.stats.pi_caught_device) }),
      ),
    ),
    ...s.disks.map((d) =>
      el(
        'tr',
        {},
        el('td', { text: `${d.path} (dif_errors)` }),
        el('td', { text: '' }),
        el('td', { text: String(d.stats.difErrors) }),
      ),
    ),
  );
}

function renderHistogram(s) {
  const h = s.hypervisor?.hypercalls;
  const box = $('#hist');
  if (!h) return box.replaceChildren(el('p', { text: 'no histogram from the hypervisor' }));
  const rows = [];
  for (const [type, series] of Object.entries(h.byType).sort((a, b) => b[1].count - a[1].count)) {
    const mean = series.count ? (series.sum / series.count) * 1e6 : 0;
    // the median bucket: the first upper bound holding half of the calls
    const half = series.count / 2;
    const i = series.counts.findIndex((c) => c >= half);
    const median =
      i < 0 ? '>' + h.buckets[h.buckets.length - 1] * 1e6 : '≤' + +(h.buckets[i] * 1e6).toPrecision(3);
    const bar = el('div', { class: 'bar' }, el('div'));
    bar.firstChild.style.width = `${Math.min(100, mean)}%`;
    rows.push(
      el(
        'div',
        { class: 'hist-row' },
        el('span', { class: 'name', text: type }),
        bar,
        `${series.count} calls, mean ${mean.toFixed(1)} µs, median ${median} µs`,
      ),
    );
  }
  box.replaceChildren(...rows);
}

// ---- XenStore, as xenstore-ls -p prints it (xenstore_client.c do_ls, 80 columns) ---------------
function sanitise(v) {
  let out = '';
  for (const c of new TextEncoder().encode(v)) {
    if (c >= 0x20 && c <= 0x7e && c !== 0x5c) out += String.fromCharCode(c);
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 8) out += '\\' + c.toString(8).padStart(3, '0');
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out;
}

function renderXenstore(nodes) {
  const lines = nodes.map((n) => {
    let line = ' '.repeat(n.depth) + n.name;
    if (n.value === null) return line + ':';
    const part = ` = "${sanitise(n.value)}"`;
    if (line.length + new TextEncoder().encode(n.value).length + 8 > 80)
      return `${line} = "${sanitise(n.value).slice(0, Math.max(0, 72 - line.length))}\\..."  (${(n.perms ?? []).join(',')})`;
    line += part + ' ';
    for (let w = line.length; w < 60; w++) line += w & 1 ? '.' : ' ';
    return `${line}  (${(n.perms ?? []).join(',')})`;
  });
  $('#xenstore').textContent = lines.join('\n');
}

// ---- controls: GET /controls says what can be changed and where --------------------------------
let controls = [];
let lastTargets = '';
async function loadControls() {
  const res = await fetch('/controls', { headers: { authorization: `Bearer ${token}` } });
  if (res.ok) controls = await res.json();
  lastTargets = ''; // the next snapshot draws them
}

function renderControls(s) {
  const targets = {
    vbd: s.vbds.map((v) => ({ domid: v.domid, devid: v.devid, label: `vbd-${v.domid}-${v.devid}` })),
    disk: s.disks.map((d) => ({ disk: d.path.slice(5), label: d.path })),
  };
  const sig = JSON.stringify(targets);
  if (sig === lastTargets) return;
  lastTargets = sig;
  const forms = [];
  for (const c of controls) {
    for (const t of targets[c.target] ?? []) {
      const inputs = c.fields.map((f) =>
        f.choices
          ? el('select', { name: f.name }, ...f.choices.map((x) => el('option', { value: x, text: x })))
          : el('input', {
              name: f.name,
              placeholder: f.placeholder ?? f.name,
              size: f.placeholder ? '40' : '8',
            }),
      );
      const form = el(
        'form',
        { class: 'control', 'data-control': `${c.id}:${t.label}` },
        el('span', { text: `${t.label}: ${c.label}` }),
        ...inputs,
        el('button', { type: 'submit', text: 'apply' }),
      );
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        // a path parameter comes from the target (disk, vbd) or, failing that, from a field
        const body = Object.fromEntries(inputs.map((i) => [i.name, i.value]));
        const path = c.path.replace(/\{(\w+)\}/g, (_, k) => {
          const v = k in t ? t[k] : body[k];
          delete body[k];
          return encodeURIComponent(String(v));
        });
        const res = await fetch(path, {
          method: c.method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: c.method === 'DELETE' || c.method === 'GET' ? undefined : JSON.stringify(body),
        });
        $('#control-result').textContent = `${c.method} ${path} → ${res.status}\n${await res.text()}`;
      });
      forms.push(form);
    }
  }
  $('#controls').replaceChildren(...forms);
}

// ---- the socket ---------------------------------------------------------------------------------
function connect() {
  if (!token) {
    setStatus('no token: open the URL `pvblk dashboard` prints (…/dashboard#token=…)', false);
    return;
  }
  // the token goes with the upgrade (hex, as a subprotocol): the host answers such a socket at once,
  // and a stranger's flood of silent sockets from this address cannot take its place
  const hex = Array.from(new TextEncoder().encode(token), (b) => b.toString(16).padStart(2, '0')).join('');
  const ws = new WebSocket(
    `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/dashboard/ws`,
    ['pvblk-dashboard', `pvblk-token.${hex}`],
  );
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === 'hello') {
      setStatus('live', true);
      void loadControls();
    } else if (m.type === 'snapshot') {
      $('#clock').textContent = new Date(m.time).toLocaleTimeString();
      renderDomains(m);
      renderVbds(m);
      renderDisks(m);
      renderPi(m);
      renderHistogram(m);
      renderControls(m);
    } else if (m.type === 'xenstore') renderXenstore(m.nodes);
  };
  ws.onclose = (ev) => {
    setStatus(`disconnected (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`, false);
    if (ev.code !== 4401 && ev.code !== 4403) setTimeout(connect, 2000);
  };
}
connect();
