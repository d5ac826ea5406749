// The browser page at /terminal/: pick a cluster and a pod (and container) or a node, open a terminal over the
// terminal service's WebSocket frames, or follow a pod's logs. No inline script, no third-party origin: the page
// keeps to its Content-Security-Policy. The token stays in sessionStorage (this tab only) and travels as the
// Authorization header of the API calls; WebSockets, which cannot carry headers, use a single-use ticket.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import './styles.css';

const TOKEN_KEY = 'kitefn.token';
const PING_MS = 25000; // below the server's 60 s silence timeout

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function setStatus(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

// api calls the kitefn API with the token; a non-2xx answer throws with the API's own message.
async function api(path, { method = 'GET', body } = {}) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || text || res.statusText;
    throw new Error(`${res.status}: ${msg}`);
  }
  return data;
}

const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString();
const seg = encodeURIComponent;

function fill(select, names, keep) {
  const previous = keep ? select.value : '';
  select.replaceChildren(...names.map((n) => new Option(n, n)));
  if (previous && names.includes(previous)) select.value = previous;
}

const state = { socket: null, term: null, fit: null, pinger: 0, pods: [] };

async function loadClusters() {
  if (!token()) {
    setStatus('Enter an API token to start.');
    return;
  }
  try {
    const me = await api('/api/v1/me');
    $('who').textContent = `${me.name} (${(me.roles || []).join(', ')})`;
    const list = await api('/api/v1/clusters');
    const names = (list.items || []).map((c) => c.name);
    fill($('cluster'), names, true);
    setStatus(names.length ? `${names.length} cluster(s)` : 'No cluster registered.');
    if (names.length) await loadTargets();
  } catch (e) {
    $('who').textContent = '';
    setStatus(`Clusters: ${e.message}`, true);
  }
}

async function loadTargets() {
  if ($('kind').value === 'node') return loadNodes();
  await loadNamespaces();
  return loadPods();
}

async function loadNamespaces() {
  try {
    const list = await api(`/api/v1/resources/namespaces?${q({ cluster: $('cluster').value })}`);
    $('namespaces').replaceChildren(...(list.items || []).map((n) => new Option(n.metadata.name)));
  } catch {
    $('namespaces').replaceChildren(); // a namespace-scoped token may not list them: typing one still works
  }
}

async function loadPods() {
  const ns = $('namespace').value.trim();
  if (!ns) return;
  try {
    const list = await api(`/api/v1/resources/pods/${seg(ns)}?${q({ cluster: $('cluster').value })}`);
    state.pods = list.items || [];
    fill($('pod'), state.pods.map((p) => p.metadata.name), true);
    loadContainers();
    setStatus(`${state.pods.length} pod(s) in ${ns}`);
  } catch (e) {
    state.pods = [];
    fill($('pod'), []);
    fill($('container'), []);
    setStatus(`Pods: ${e.message}`, true);
  }
}

function loadContainers() {
  const pod = state.pods.find((p) => p.metadata.name === $('pod').value);
  fill($('container'), pod ? (pod.spec.containers || []).map((c) => c.name) : []);
}

async function loadNodes() {
  try {
    const list = await api(`/api/v1/resources/nodes?${q({ cluster: $('cluster').value })}`);
    const names = (list.items || []).map((n) => n.metadata.name);
    fill($('node'), names, true);
    setStatus(`${names.length} node(s)`);
  } catch (e) {
    fill($('node'), []);
    setStatus(`Nodes: ${e.message}`, true);
  }
}

// target is what the picker names: the WebSocket path and query without the ticket, and the ticket request.
function target(kind) {
  const cluster = $('cluster').value;
  if (kind === 'node') {
    const node = $('node').value;
    return { path: `/api/v1/terminal/nodes/${seg(node)}`, query: { cluster }, ticket: { kind, cluster, node } };
  }
  const namespace = $('namespace').value.trim();
  const pod = $('pod').value;
  const container = $('container').value;
  if (kind === 'logs') {
    const follow = $('follow').checked ? 'true' : '';
    return {
      path: `/api/v1/logs/${seg(namespace)}/${seg(pod)}`,
      query: { cluster, container, follow },
      ticket: { kind, cluster, namespace, pod, container },
    };
  }
  return {
    path: `/api/v1/terminal/pods/${seg(namespace)}/${seg(pod)}`,
    query: { cluster, container },
    ticket: { kind, cluster, namespace, pod, container },
  };
}

// connect asks for a single-use ticket for the target, then opens the WebSocket with it; null (the status says
// why) when the ticket is refused.
async function connect(t, label) {
  setStatus(`Opening ${t.path}…`);
  let answer;
  try {
    answer = await api('/api/v1/terminal/tickets', { method: 'POST', body: t.ticket });
  } catch (e) {
    setStatus(`${label}: ${e.message}`, true);
    return null;
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}${t.path}?${q({ ...t.query, ticket: answer.ticket })}`);
  state.socket = socket;
  $('close').disabled = false;
  state.pinger = setInterval(() => send({ type: 'ping' }), PING_MS);
  socket.addEventListener('close', (ev) => {
    clearInterval(state.pinger);
    if (state.socket === socket) {
      state.socket = null;
      $('close').disabled = true;
    }
    const why = ev.reason ? `: ${ev.reason}` : '';
    const said = $('status');
    // An error or the shell's exit says more than the close that follows it.
    if (!said.classList.contains('error') && !said.textContent.startsWith('Exited')) setStatus(`Closed (${ev.code}${why})`);
  });
  return socket;
}

function send(frame) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(frame));
}

function disconnect() {
  if (state.socket) state.socket.close(1000, 'closed by the page');
  state.socket = null;
  clearInterval(state.pinger);
  $('close').disabled = true;
}

function terminal() {
  if (state.term) {
    state.term.reset();
    return state.term;
  }
  const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 13 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open($('terminal'));
  term.onData((data) => send({ type: 'stdin', data }));
  term.onResize(({ cols, rows }) => send({ type: 'resize', cols, rows }));
  window.addEventListener('resize', () => fit.fit());
  state.term = term;
  state.fit = fit;
  return term;
}

async function openTerminal(kind) {
  disconnect();
  $('logs').hidden = true;
  $('terminal').hidden = false;
  const term = terminal();
  state.fit.fit();
  const t = target(kind);
  const socket = await connect(t, 'Terminal');
  if (!socket) return;
  socket.addEventListener('message', (ev) => {
    const f = JSON.parse(ev.data);
    switch (f.type) {
      case 'connected':
        setStatus(f.data || `Connected to ${t.path}`);
        send({ type: 'resize', cols: term.cols, rows: term.rows });
        term.focus();
        break;
      case 'stdout':
      case 'stderr':
        term.write(f.data || '');
        break;
      case 'info':
        setStatus(f.data);
        term.write(`\r\n\x1b[2m${f.data}\x1b[0m\r\n`);
        break;
      case 'error':
        setStatus(f.data, true);
        term.write(`\r\n\x1b[31m${f.data}\x1b[0m\r\n`);
        break;
      case 'exit':
        setStatus(`Exited with code ${f.code ?? 0}`);
        break;
      default: // pong and frames this page does not know
    }
  });
}

function logLine(cls, text, src) {
  const line = document.createElement('div');
  line.className = cls;
  if (src) {
    const s = document.createElement('span');
    s.className = 'src';
    s.textContent = `[${src}] `;
    line.append(s);
  }
  line.append(text);
  const box = $('logs');
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.append(line);
  if (atEnd) box.scrollTop = box.scrollHeight;
}

async function openLogs() {
  disconnect();
  $('terminal').hidden = true;
  const box = $('logs');
  box.hidden = false;
  box.replaceChildren();
  const t = target('logs');
  const socket = await connect(t, 'Logs');
  if (!socket) return;
  socket.addEventListener('open', () => setStatus(`Logs of ${t.path}`));
  socket.addEventListener('message', (ev) => {
    const f = JSON.parse(ev.data);
    const src = [f.pod, f.container].filter(Boolean).join('/');
    switch (f.type) {
      case 'log':
        logLine('line', (f.data || '').replace(/\n$/, ''), src);
        break;
      case 'pod_added':
        logLine('note', f.data || 'pod added', src);
        break;
      case 'pod_removed':
        logLine('note', f.data || 'pod removed', src);
        break;
      case 'info':
        logLine('note', f.data || '', src);
        break;
      case 'error':
        logLine('error', f.data || 'error', src);
        setStatus(f.data, true);
        break;
      default:
    }
  });
}

function showKind() {
  const node = $('kind').value === 'node';
  $('pod-fields').hidden = node;
  $('node-fields').hidden = !node;
  $('open-logs').disabled = node;
  return loadTargets();
}

function main() {
  $('token').value = token();
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    loadClusters();
  });
  $('cluster').addEventListener('change', loadTargets);
  $('kind').addEventListener('change', showKind);
  $('namespace').addEventListener('change', loadPods);
  $('pod').addEventListener('change', loadContainers);
  $('picker').addEventListener('submit', (ev) => {
    ev.preventDefault();
    openTerminal($('kind').value);
  });
  $('open-logs').addEventListener('click', openLogs);
  $('close').addEventListener('click', () => {
    disconnect();
    setStatus('Closed');
  });
  loadClusters();
}

main();
