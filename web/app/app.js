// app.js: the twokey browser app. One more client of the protocol
// (docs/protocol.md): it signs in the page with a key that never leaves it,
// verifies every record's signature and the chain before drawing it, and
// draws each card from the verified record, never from a server summary.

import { verifyRecord, generateIdentity, importIdentityFile, exportIdentityFile, sealBox, utf8, isCanonicalKeyId } from './crypto.js';
import { listIdentities, saveIdentity, deleteIdentity, getActive, setActive } from './idstore.js';
import { Session, ServerError } from './session.js';
import { Conv, SETTLED, describePolicy, plainPolicy, plainRule, policyOf, normPolicy, ruleText, ruleDiff, groupDiff, codePoints } from './fold.js';
import { h, replace, field, shortKey, when, countdown, coolOff } from './dom.js';

const S = {
  identities: [],
  me: null, // the active identity
  session: null,
  gatewayKey: '', // the pinned gateway signing key
  gatewayWarning: '',
  convs: new Map(), // id -> Conv
  catalog: null,
  status: 'starting',
  statusDetail: '',
  inflight: new Map(), // action key -> true
  errors: new Map(), // action key -> message
  view: null, // the mounted view: {name, conv, req, root, update()}
};

const root = document.getElementById('app');

// The protocol's limits (limits.go), checked before anything is signed.
const MAX_TEXT_BYTES = 16 << 10;
const MAX_NAME_BYTES = 128;
const MAX_MEMBERS = 64;

// ---- start -------------------------------------------------------------

async function start() {
  window.addEventListener('hashchange', route);
  setInterval(tick, 1000);
  try {
    S.identities = await listIdentities();
    const active = await getActive();
    S.me = S.identities.find(i => i.keyId === active) || null;
  } catch (e) {
    fatal(`This browser cannot keep identities (IndexedDB: ${e.message}). Use a browser profile that allows site storage.`);
    return;
  }
  if (!crypto.subtle) {
    fatal('This page needs WebCrypto: open it over https or at http://127.0.0.1 / localhost.');
    return;
  }
  if (S.me) await signIn();
  route();
}

function fatal(msg) {
  replace(root, h('div', { class: 'banner bad', role: 'alert' }, msg));
}

async function signIn() {
  if (S.session) S.session.close();
  S.convs.clear();
  S.status = 'connecting';
  const sess = new Session(S.me, { onState: (st, detail) => { S.status = st; S.statusDetail = detail || ''; renderStatus(); } });
  S.session = sess;
  try {
    const gw = await sess.loadGateway();
    const pinKey = 'twokey.gateway.' + location.host;
    const pinned = localStorage.getItem(pinKey);
    if (!pinned) localStorage.setItem(pinKey, gw.signing_key);
    S.gatewayKey = pinned || gw.signing_key;
    S.gatewayWarning = pinned && pinned !== gw.signing_key
      ? `The gateway's signing key changed: this browser trusted ${shortKey(pinned)}…, the server now says ${shortKey(gw.signing_key)}…. Records are checked against the key trusted before.`
      : '';
    S.catalog = await sess.catalog();
    await sess.bearer();
    await refreshConversations();
  } catch (e) {
    S.status = 'offline';
    S.statusDetail = e.message;
  }
  sess.connect({
    open: () => { for (const c of S.convs.values()) sess.subscribe(c.id, c.seq); },
    frame: onFrame,
  });
  clearInterval(S.pollTimer);
  S.pollTimer = setInterval(() => { refreshConversations().catch(() => {}); }, 5000);
}

async function refreshConversations() {
  const sess = S.session;
  const list = await sess.conversations();
  let added = false;
  for (const s of list) {
    if (S.convs.has(s.id)) continue;
    const c = new Conv(s.id);
    c.catalog = S.catalog;
    c.queue = Promise.resolve();
    c.summaryName = s.name;
    S.convs.set(s.id, c);
    added = true;
    await enqueue(c, () => backfill(c));
    sess.subscribe(c.id, c.seq);
  }
  if (added) update();
}

// ---- records: verified in order, then folded -----------------------------

function enqueue(c, fn) {
  c.queue = c.queue.then(fn).catch(e => { c.loadError = e.message; });
  return c.queue;
}

async function backfill(c) {
  for (let i = 0; i < 1000; i++) { // bounded: 500,000 records
    const recs = await S.session.records(c.id, c.seq, 500);
    for (const rec of recs) await take(c, rec);
    if (recs.length < 500) break;
  }
  await loadM(c);
}

// take verifies rec against the record before it and folds it in.
async function take(c, rec) {
  if (!rec || typeof rec.seq !== 'number' || rec.seq <= c.seq) return false;
  if (rec.seq !== c.seq + 1) {
    await backfill(c); // a gap: read what is missing first
    if (rec.seq !== c.seq + 1) return false;
  }
  const v = await verifyRecord(rec, c.seq ? { seq: c.seq, chain: c.chain } : null, S.gatewayKey);
  if (v.ok) authorize(c, rec, v);
  c.entries.push({ rec, v });
  c.seq = rec.seq;
  c.chain = rec.chain;
  if (v.ok) {
    // a record the fold cannot believe is drawn as one that failed
    const bad = c.apply(rec, v);
    if (bad) { v.ok = false; v.reason = bad; }
  }
  if (!v.ok && !c.broken) c.broken = { seq: rec.seq, reason: v.reason };
  return true;
}

// authorize checks what the signature alone cannot: that the record
// belongs to this conversation and its author may say it.
function authorize(c, rec, v) {
  const p = v.payload;
  if (p.conversation !== c.id) { v.ok = false; v.reason = 'signed for another conversation'; return; }
  if (v.kind === 'conversation.create') {
    if (rec.seq !== 1) { v.ok = false; v.reason = 'a conversation.create that is not the first record'; }
    return;
  }
  if (v.author === S.gatewayKey) return;
  if (!c.members.has(v.author)) { v.ok = false; v.reason = 'signed by a key that is not a member'; return; }
  if (p.gateway !== undefined && p.gateway !== S.gatewayKey) { v.ok = false; v.reason = 'signed for another gateway'; }
}

// loadM takes the policy of the requests whose rule the page could not
// work out (a service its catalog does not list) from the server's state:
// the one thing the page cannot read from a signed record until the
// request closes.
async function loadM(c) {
  if (![...c.requests.values()].some(r => r.m === null)) return;
  try {
    for (const st of await S.session.requestStates(c.id)) {
      const r = c.requests.get(st.request_id);
      if (r && r.m === null) {
        r.m = st.required_approvals;
        r.rule = st.rule;
        if (st.policy && !r.policy) { r.policy = normPolicy(st.policy); r.policyFrom = 'server'; }
      }
    }
  } catch { /* shown as ?/M */ }
}

function onFrame(f) {
  if (f.op !== 'record') return;
  const c = S.convs.get(f.conversation);
  if (!c) return;
  enqueue(c, async () => {
    const wasPending = new Set([...c.requests.values()].filter(r => r.m === null).map(r => r.id));
    await take(c, f.record);
    if ([...c.requests.values()].some(r => r.m === null && !wasPending.has(r.id))) await loadM(c);
  }).then(update);
}

async function ingest(c, rec) {
  await enqueue(c, async () => { await take(c, rec); await loadM(c); });
  update();
}

// ---- routing and the frame ------------------------------------------------

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'c' && parts[1]) return { name: 'conv', conv: parts[1], req: parts[2] === 'r' ? parts[3] || '' : '' };
  if (parts[0] === 'id') return { name: 'ids' };
  if (parts[0] === 'new') return { name: 'new' };
  return { name: 'home' };
}

function route() {
  let r = parseRoute();
  if (!S.me && r.name !== 'ids') r = { name: 'ids' };
  const header = renderHeader();
  let view;
  if (r.name === 'ids') view = identitiesView();
  else if (r.name === 'new') view = newConversationView();
  else if (r.name === 'conv') view = conversationView(r.conv, r.req);
  else view = homeView();
  S.view = view;
  replace(root, header, S.gatewayWarning ? h('div', { class: 'banner bad', role: 'alert' }, S.gatewayWarning) : null, view.el);
  view.update();
  renderStatus();
  const focus = view.el.querySelector('[data-autofocus]');
  if (focus) focus.focus();
}

function update() {
  renderStatus();
  if (S.view) S.view.update();
}

function tick() {
  for (const el of document.querySelectorAll('[data-expires]')) el.textContent = countdown(el.dataset.expires);
  let due = false;
  for (const el of document.querySelectorAll('[data-executes]')) {
    el.textContent = coolOff(el.dataset.executes);
    if (Date.now() >= Date.parse(el.dataset.executes)) due = true;
  }
  // a cool-off that ended takes no more vetoes: draw the card without
  // its Veto button until the gateway's record comes
  if (due && S.view) S.view.update();
}

function renderHeader() {
  const who = S.me
    ? h('span', { class: 'who' }, h('span', { class: 'name' }, S.me.name), ' ', h('code', { title: S.me.keyId }, shortKey(S.me.keyId)), ' ', copyButton(S.me.keyId, 'Copy your key id'))
    : h('span', { class: 'who' }, 'no identity');
  return h('header', { class: 'top' },
    h('nav', { 'aria-label': 'main' },
      h('a', { href: '#/', class: 'brand' }, 'twokey'),
      h('a', { href: '#/new' }, 'New conversation'),
      h('a', { href: '#/id' }, 'Identities')),
    who,
    h('span', { id: 'status', class: 'status', role: 'status' }));
}

function renderStatus() {
  const el = document.getElementById('status');
  if (!el) return;
  const txt = { online: 'live', connecting: 'connecting…', offline: 'offline, retrying', session: 'live', error: 'error', starting: '' }[S.status] ?? S.status;
  el.textContent = txt;
  el.title = S.statusDetail;
  el.className = 'status ' + (S.status === 'online' || S.status === 'session' ? 'ok' : 'warn');
}

function copyButton(text, label) {
  const b = h('button', { type: 'button', class: 'small', 'aria-label': label, title: label }, 'Copy');
  b.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(text); b.textContent = 'Copied'; } catch { b.textContent = 'Select and copy: ' + text; }
    setTimeout(() => { b.textContent = 'Copy'; }, 2000);
  });
  return b;
}

// ---- identities -------------------------------------------------------------

function identitiesView() {
  const list = h('ul', { class: 'ids', 'aria-label': 'identities' });
  const msg = h('p', { class: 'msg', role: 'status' });
  const name = h('input', { type: 'text', required: true, autocomplete: 'off', maxlength: '64', 'data-autofocus': true });
  const extractable = h('input', { type: 'checkbox' });
  const create = h('form', { class: 'card', 'aria-label': 'create an identity' },
    h('h2', {}, 'Create an identity'),
    field('Your name, as others will see it', name),
    h('div', { class: 'check' }, extractable, h('label', { for: extractable.id = 'extractable' }, 'Allow exporting this key (it can then be copied out of this browser)')),
    h('p', { class: 'hint' }, 'By default the private key is made non-extractable: it never leaves this browser profile, not even to you.'),
    h('button', { type: 'submit' }, 'Create'));
  create.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!name.value.trim()) { msg.textContent = 'Give a name.'; return; }
    try {
      const id = await generateIdentity(name.value.trim(), { extractable: extractable.checked });
      await saveIdentity(id);
      await activate(id);
      msg.textContent = `Created ${id.name} (${id.keyId}).`;
    } catch (e) { msg.textContent = 'Could not create the identity: ' + e.message; }
  });
  const file = h('input', { type: 'file', accept: '.json,application/json' });
  const imp = h('form', { class: 'card', 'aria-label': 'import an identity' },
    h('h2', {}, 'Import a twokey id file'),
    field('Identity file (made by twokey id new)', file, 'The key is imported non-extractable: it cannot be exported again from here.'),
    h('button', { type: 'submit' }, 'Import'));
  imp.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!file.files.length) { msg.textContent = 'Choose a file first.'; return; }
    try {
      const id = await importIdentityFile(await file.files[0].text());
      if (S.identities.some(i => i.keyId === id.keyId)) { msg.textContent = `${id.name} (${shortKey(id.keyId)}) is already here.`; return; }
      await saveIdentity(id);
      await activate(id);
      msg.textContent = `Imported ${id.name} (${id.keyId}).`;
    } catch (e) { msg.textContent = 'Could not import: ' + e.message; }
    file.value = '';
  });
  const el = h('section', { class: 'page', 'aria-labelledby': 'ids-title' },
    h('h1', { id: 'ids-title' }, 'Identities'),
    h('p', {}, 'An identity is an Ed25519 key pair kept in this browser. Your key id is how others add you to a conversation.'),
    list, msg, h('div', { class: 'grid2' }, create, imp));
  return {
    el,
    update() {
      replace(list, S.identities.length ? null : h('li', {}, 'No identity yet: create one or import a twokey id file.'),
        S.identities.map(id => {
          const active = S.me && S.me.keyId === id.keyId;
          const exportBtn = id.extractable ? h('button', { type: 'button', class: 'small', 'on:click': () => exportId(id, msg) }, 'Export…') : null;
          return h('li', { class: active ? 'active' : '' },
            h('strong', {}, id.name), active ? h('span', { class: 'badge ok' }, 'active') : null,
            h('code', { class: 'keyid' }, id.keyId), copyButton(id.keyId, `Copy ${id.name}'s key id`),
            active ? null : h('button', { type: 'button', class: 'small', 'on:click': () => activate(id) }, 'Use'),
            exportBtn,
            h('button', { type: 'button', class: 'small danger', 'on:click': () => removeId(id, msg) }, 'Delete'));
        }));
    },
  };
}

async function activate(id) {
  await setActive(id.keyId);
  S.identities = await listIdentities();
  S.me = S.identities.find(i => i.keyId === id.keyId) || id;
  await signIn();
  route();
}

async function exportId(id, msg) {
  if (!confirm(`Export ${id.name}'s private key? Anyone with the file can sign as ${id.name}. Keep it like a password.`)) return;
  try {
    const text = await exportIdentityFile(id);
    const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: `${id.name}.json` });
    document.body.appendChild(a);
    a.click();
    a.remove();
    msg.textContent = `Exported ${id.name}: chmod 600 the file before use with the CLI.`;
  } catch (e) { msg.textContent = e.message; }
}

async function removeId(id, msg) {
  if (!confirm(`Delete ${id.name} from this browser? ${id.extractable ? '' : 'Its key cannot be exported: it is gone for good.'}`)) return;
  await deleteIdentity(id.keyId);
  S.identities = await listIdentities();
  if (S.me && S.me.keyId === id.keyId) {
    S.me = null;
    if (S.session) S.session.close();
    S.session = null;
  }
  msg.textContent = `Deleted ${id.name}.`;
  route();
}

// ---- home: waiting for you first ---------------------------------------------

function readMark(c) { return Number(localStorage.getItem(`twokey.read.${S.me.keyId}.${c.id}`) || 0); }
function markRead(c) { localStorage.setItem(`twokey.read.${S.me.keyId}.${c.id}`, String(c.seq)); }

function homeView() {
  const waiting = h('ul', { class: 'queue', 'aria-label': 'waiting for you' });
  const convs = h('ul', { class: 'convs', 'aria-label': 'conversations' });
  const el = h('section', { class: 'page' },
    h('h1', {}, 'Waiting for you'), waiting,
    h('h2', {}, 'Conversations'), convs,
    h('p', {}, h('a', { href: '#/new', class: 'button' }, 'New conversation')));
  return {
    el,
    update() {
      const items = [];
      for (const c of S.convs.values()) items.push(...c.waitingFor(S.me.keyId));
      items.sort((a, b) => (a.expires || '9').localeCompare(b.expires || '9'));
      replace(waiting, items.length ? null : h('li', { class: 'empty' }, 'Nothing needs your vote.'),
        items.map(it => it.type === 'request'
          ? h('li', { class: 'qitem' },
            h('a', { href: `#/c/${it.conv.id}/r/${it.item.id}` }, `${it.item.payload.method} ${it.item.payload.url}`),
            h('span', {}, ` in ${it.conv.name} · by ${it.conv.nameOf(it.item.submitter)} · ${it.conv.counted(it.item).length}/${it.item.m ?? '?'} approvals · `),
            h('span', { 'data-expires': it.expires }, countdown(it.expires)))
          : h('li', { class: 'qitem' },
            h('a', { href: `#/c/${it.conv.id}` }, `Membership change proposed by ${it.conv.nameOf(it.item.proposer)}`),
            h('span', {}, ` in ${it.conv.name} · ${it.item.approvals.size}/${it.item.needed.length} approvals`))));
      const list = [...S.convs.values()].sort((a, b) => (a.name || '').localeCompare(b.name || ''));
      replace(convs, list.length ? null : h('li', { class: 'empty' }, 'No conversation yet. Create one, or give your key id to someone who will add you.'),
        list.map(c => {
          const unread = c.entries.filter(e => e.rec.seq > readMark(c)).length;
          const wait = c.waitingFor(S.me.keyId).length;
          return h('li', {},
            h('a', { href: `#/c/${c.id}` }, c.name || c.summaryName || c.id),
            unread ? h('span', { class: 'badge', title: 'records you have not seen' }, `${unread} unread`) : null,
            wait ? h('span', { class: 'badge warn' }, `${wait} wait for you`) : null,
            c.broken ? h('span', { class: 'badge bad' }, 'a record failed verification') : null,
            h('span', { class: 'muted' }, c.gate.enabled ? ` gateway on, ${c.gate.m} of ${c.gate.signers.length}` : ' gateway off'));
        }));
    },
  };
}

// ---- a new conversation ------------------------------------------------------

function newConversationView() {
  const name = h('input', { type: 'text', required: true, maxlength: '64', 'data-autofocus': true });
  const members = h('textarea', { rows: '4', placeholder: 'bob=3q2+7w…\ncarol=Zm9v…' });
  const msg = h('p', { class: 'msg', role: 'alert' });
  const form = h('form', { class: 'card' },
    field('Conversation name', name),
    field('Members, one per line as name=KEY_ID', members, 'You are added as its admin. Members can be added later until the gateway is enabled.'),
    h('button', { type: 'submit' }, 'Create'));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const list = [];
    for (const line of members.value.split('\n').map(l => l.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      const n = i > 0 ? line.slice(0, i).trim() : '';
      const k = i > 0 ? line.slice(i + 1).trim() : '';
      if (!n || !isCanonicalKeyId(k)) { msg.textContent = `"${line}": write name=KEY_ID, with the 43-character key id the person copied from twokey.`; return; }
      if (utf8(n).length > MAX_NAME_BYTES) { msg.textContent = `"${n}": a name is at most ${MAX_NAME_BYTES} bytes.`; return; }
      list.push({ key: k, name: n });
    }
    if (!list.some(m => m.key === S.me.keyId)) list.unshift({ key: S.me.keyId, name: S.me.name });
    if (list.length > MAX_MEMBERS) { msg.textContent = `A conversation has at most ${MAX_MEMBERS} members; this list has ${list.length}.`; return; }
    if (!name.value.trim() || utf8(name.value.trim()).length > MAX_NAME_BYTES) { msg.textContent = `Give the conversation a name of 1 to ${MAX_NAME_BYTES} bytes.`; return; }
    try {
      const { id } = await S.session.createConversation(name.value.trim(), list);
      await refreshConversations();
      location.hash = `#/c/${id}`;
    } catch (e) { msg.textContent = errText(e); }
  });
  return { el: h('section', { class: 'page' }, h('h1', {}, 'New conversation'), form, msg), update() {} };
}

function errText(e) {
  return e instanceof ServerError ? `${e.message} (${e.code})` : e.message;
}

// ---- a conversation ----------------------------------------------------------

function conversationView(convId, reqId) {
  const log = h('ol', { class: 'log', 'aria-label': 'the conversation log' });
  const focus = h('section', { class: 'focus', 'aria-label': 'the request you opened' });
  const title = h('h1', {});
  const banner = h('div', {});
  const panel = h('div', { class: 'gate-info' });
  const cards = new Map(); // seq -> {ver, el}
  let c = null;

  const text = h('input', { type: 'text', autocomplete: 'off' });
  const chatMsg = h('p', { class: 'msg', role: 'alert' });
  const chat = h('form', { class: 'chat', 'aria-label': 'send a message' }, field('Message', text), h('button', { type: 'submit' }, 'Send'), chatMsg);
  chat.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!text.value.trim() || !c) return;
    if (utf8(text.value).length > MAX_TEXT_BYTES) { chatMsg.textContent = `A message is at most ${MAX_TEXT_BYTES} bytes; this one is ${utf8(text.value).length}. Split it.`; return; }
    const btn = chat.querySelector('button');
    btn.disabled = true;
    try {
      const rec = await S.session.post(c.id, 'chat.message', { text: text.value });
      text.value = '';
      chatMsg.textContent = '';
      await ingest(c, rec);
    } catch (e) { chatMsg.textContent = errText(e); }
    btn.disabled = false;
  });

  const forms = { built: false };
  const side = h('aside', { class: 'side', 'aria-label': 'API gateway' });
  const el = h('div', { class: 'conv' },
    h('section', { class: 'main' }, title, banner, focus, log, chat),
    side);

  let lastPanel = '';
  return {
    el,
    update() {
      c = S.convs.get(convId);
      if (!c) {
        replace(title, 'Conversation');
        replace(banner, h('p', { class: 'muted' }, S.session ? 'Loading, or not a conversation you are a member of…' : ''));
        return;
      }
      replace(title, c.name || c.summaryName);
      replace(banner,
        c.broken ? h('div', { class: 'banner bad', role: 'alert' }, `Record ${c.broken.seq} failed verification in this page: ${why(c.broken)}. It is drawn red and cannot be acted on.`) : null,
        c.loadError ? h('div', { class: 'banner bad', role: 'alert' }, c.loadError) : null);
      if (!forms.built) { buildForms(c, side, panel, forms); forms.built = true; }
      const pv = panelVersion(c);
      if (pv !== lastPanel) { lastPanel = pv; renderPanel(c, panel, forms); }
      // the log, card by card: an unchanged card keeps its element (and focus)
      for (const e of c.entries) {
        const ver = cardVersion(c, e);
        const have = cards.get(e.rec.seq);
        if (have && have.ver === ver) continue;
        const card = renderCard(c, e);
        if (have) have.el.replaceWith(card); else log.appendChild(card);
        cards.set(e.rec.seq, { ver, el: card });
      }
      if (reqId) {
        const r = c.requests.get(reqId);
        const fv = r ? 'f' + cardVersion(c, { rec: { seq: r.seq }, v: { ok: true, kind: 'gate.request', payload: r.payload } }) + r.records.join(',') : 'none';
        if (focus.dataset.ver !== fv) {
          focus.dataset.ver = fv;
          replace(focus, r
            ? [h('h2', {}, 'Request ', h('code', {}, shortKey(r.id))), h('ol', { class: 'log' }, r.records.map(seq => {
              const e = c.entries[seq - 1];
              return e ? renderCard(c, e, 'focus-') : null;
            })), h('p', {}, h('a', { href: `#/c/${c.id}` }, 'Show the whole conversation'))]
            : h('p', { class: 'banner warn' }, `No request ${reqId} in this conversation (yet).`));
          if (r && !focus.dataset.scrolled) { focus.dataset.scrolled = '1'; focus.scrollIntoView({ block: 'start' }); }
        }
      }
      markRead(c);
    },
  };
}

function panelVersion(c) {
  return JSON.stringify([c.gate, c.admin, [...c.members], [...c.secrets.values()].map(s => [s.secret_id, s.revoked]),
    [...c.proposals.values()].map(p => [p.id, p.open, p.approvals.size]), S.me.keyId]);
}

// ---- the cards -----------------------------------------------------------------

function cardVersion(c, e) {
  if (!e.v.ok) return 'bad';
  const p = e.v.payload;
  if (e.v.kind === 'gate.request') {
    const r = c.requests.get(p.request_id);
    if (!r) return 'orphan';
    const k = 'req:' + r.id;
    const due = r.state === 'approved' && r.executableAt && Date.now() >= Date.parse(r.executableAt);
    return [r.state, [...r.approvals.keys()].join(), [...r.rejections.keys()].join(), [...r.vetoes.keys()].join(), r.m, r.approvedSeq, due,
      r.policy ? describePolicy(r.policy) : '', S.inflight.has(k), S.errors.get(k) || '', c.gate.signers.join(), c.secrets.size].join('|');
  }
  if (e.v.kind === 'member.propose') {
    const pr = c.proposals.get(p.proposal_id);
    const k = 'prop:' + p.proposal_id;
    return pr ? [pr.open, pr.approvals.size, pr.outcome, S.inflight.has(k), S.errors.get(k) || ''].join('|') : 'orphan';
  }
  return 'static';
}

function verifiedMark(e) {
  return e.v.ok
    ? h('span', { class: 'mark ok', title: `signature and chain checked in this page; signed by ${e.v.author}` }, '✓ verified')
    : h('span', { class: 'mark bad' }, '✗ not verified');
}

function cardShell(c, e, kindLabel, body, prefix = '') {
  const author = e.v.ok ? e.v.author : e.rec.author;
  const who = author === S.gatewayKey ? 'gateway' : c.nameOf(author);
  return h('li', { class: 'card rec ' + (e.v.ok ? '' : 'bad'), id: `${prefix}rec-${e.rec.seq}`, 'data-seq': e.rec.seq, 'data-kind': e.v.ok ? e.v.kind : 'unverified' },
    h('div', { class: 'meta' },
      h('span', { class: 'kind' }, kindLabel), ' ',
      h('span', { class: 'author', title: author || '' }, who), ' ',
      h('span', { class: 'seq' }, '#' + e.rec.seq), ' ',
      when(e.rec.received_at), ' ', verifiedMark(e)),
    body);
}

function renderCard(c, e, prefix = '') {
  if (!e.v.ok) {
    return cardShell(c, e, e.rec.kind || 'record', h('p', { class: 'reason', role: 'note' }, `This record failed verification: ${why(e.v)}. Nothing in it is shown as fact, and it cannot be acted on.`), prefix);
  }
  const p = e.v.payload;
  const k = e.v.kind;
  const R = id => c.requests.get(id);
  const reqLink = id => h('a', { href: `#/c/${c.id}/r/${id}` }, 'request ' + shortKey(id));
  switch (k) {
    case 'chat.message': return cardShell(c, e, 'message', h('p', { class: 'text' }, p.text), prefix);
    case 'conversation.create':
      return cardShell(c, e, 'created', h('p', {}, `Conversation "${p.name}" with `, names(c, (p.members || []).map(m => m.key), p.members)), prefix);
    case 'member.add': return cardShell(c, e, 'member added', h('p', { class: 'diff' }, h('ins', {}, `+ ${p.name} `), h('code', { title: p.key }, shortKey(p.key))), prefix);
    case 'member.remove': return cardShell(c, e, 'member removed', h('p', { class: 'diff' }, h('del', {}, `− ${c.nameOf(p.key)} `), h('code', { title: p.key }, shortKey(p.key))), prefix);
    case 'gate.enable': return cardShell(c, e, 'enable', [h('p', {}, `Asks the gateway to require ${p.required_approvals} approvals`), p.groups && Object.keys(p.groups).length ? groupsList(c, p.groups) : null], prefix);
    case 'gate.enabled':
      return cardShell(c, e, 'gateway enabled', [h('p', {}, `${p.required_approvals} of ${(p.signers || []).length} signers must approve: `, names(c, p.signers)), groupsList(c, p.groups || {}, true), rulesTable(p.rules || [])], prefix);
    case 'gate.secret.stored':
      return cardShell(c, e, 'API key stored', h('p', {}, `A key for ${p.service}, injected as ${p.header_name}: ${p.header_template}`, p.expires_at ? [', until ', when(p.expires_at)] : ', with no expiry', `; provisioned by ${c.nameOf(p.provisioned_by)}.`), prefix);
    case 'gate.secret.revoke': return cardShell(c, e, 'revoke', h('p', {}, `Asks to revoke ${p.secret_id ? 'secret ' + shortKey(p.secret_id) : 'the keys of ' + p.service}`), prefix);
    case 'gate.secret.revoked': return cardShell(c, e, 'API key revoked', h('p', {}, `Revoked ${(p.secret_ids || []).map(shortKey).join(', ') || 'nothing'} (by ${c.nameOf(p.by)})`), prefix);
    case 'gate.request': return requestCard(c, e, R(p.request_id), prefix);
    case 'gate.approve': return cardShell(c, e, 'approval', h('p', {}, 'Approves ', reqLink(p.request_id), p.reason ? [': “', h('span', { class: 'why' }, p.reason), '”'] : '', digestNote(R(p.request_id), p.request_digest)), prefix);
    case 'gate.reject': {
      const veto = R(p.request_id) && R(p.request_id).vetoSeqs.has(e.rec.seq);
      return cardShell(c, e, veto ? 'veto' : 'rejection', h('p', {}, veto ? 'Vetoes ' : 'Rejects ', reqLink(p.request_id), veto ? ' in its cool-off' : '', p.reason ? [': “', h('span', { class: 'why' }, p.reason), '”'] : '', digestNote(R(p.request_id), p.request_digest)), prefix);
    }
    case 'gate.approved': {
      const r = R(p.request_id);
      const pol = r && r.policy;
      return cardShell(c, e, 'approved, cool-off', h('p', {}, reqLink(p.request_id), ' met its requirement, approved by ', names(c, p.approvers),
        p.assignment && Object.keys(p.assignment).length ? [' (slots: ', assignmentText(c, p.assignment), ')'] : '',
        '. It executes at ', when(p.executable_at), pol ? ` unless ${pol.veto === 1 ? 'a signer vetoes' : `${pol.veto} signers veto`} it first.` : ' unless vetoed first.'), prefix);
    }
    case 'gate.cancel': return cardShell(c, e, 'cancel', h('p', {}, 'Withdraws ', reqLink(p.request_id)), prefix);
    case 'gate.executed':
      return cardShell(c, e, 'executed', h('p', {}, reqLink(p.request_id), ` ran: status ${p.status} in ${p.duration_ms} ms, approved by `, names(c, p.approvers),
        p.assignment && Object.keys(p.assignment).length ? h('span', { class: 'assignment' }, ' (slots: ', assignmentText(c, p.assignment), ')') : ''), prefix);
    case 'gate.response': return cardShell(c, e, 'response', responseBody(p), prefix);
    case 'gate.failed': case 'gate.expired': case 'gate.rejected': case 'gate.cancelled':
      return cardShell(c, e, k.slice(5), h('p', {}, reqLink(p.request_id), ` ${k.slice(5)}: ${p.reason}`, p.detail ? ` (${p.detail})` : ''), prefix);
    case 'member.propose': return proposalCard(c, e, prefix);
    case 'member.approve': return cardShell(c, e, 'approves change', h('p', {}, `Approves proposal ${shortKey(p.proposal_id)}`), prefix);
    case 'member.changed': {
      const ch = c.changes.get(e.rec.seq);
      const diff = ch ? h('ul', { class: 'diff' },
        ch.added.map(m => h('li', {}, h('ins', {}, `+ ${m.name} `), h('code', { title: m.key }, shortKey(m.key)))),
        ch.removed.map(m => h('li', {}, h('del', {}, `− ${m.name} `), h('code', { title: m.key }, shortKey(m.key)))),
        ch.threshold ? h('li', {}, 'M: ', h('del', {}, String(ch.threshold.from)), ' → ', h('ins', {}, String(ch.threshold.to))) : null,
        ch.rules.map(r => h('li', {}, r.to === null ? h('del', {}, `− rule ${r.rule} → ${r.from}`)
          : r.from === null ? h('ins', {}, `+ rule ${r.rule} → ${r.to}`)
            : [`rule ${r.rule}: `, h('del', {}, String(r.from)), ' → ', h('ins', {}, String(r.to))])),
        groupDiffItems(c, ch.groups)) : null;
      return cardShell(c, e, ch ? ch.label : 'membership changed', [diff, h('p', {}, `Now ${p.required_approvals} of ${(p.signers || []).length} signers: `, names(c, p.signers)),
        p.groups && Object.keys(p.groups).length ? groupsList(c, p.groups) : null, rulesTable(p.rules || [])], prefix);
    }
    default: return cardShell(c, e, k, h('pre', {}, JSON.stringify(p, null, 2)), prefix);
  }
}

// why is a failed check's reason without its "record N: " prefix (the card
// already says which record).
function why(v) { return String(v.reason || 'unknown').replace(/^record \d+: /, ''); }

function digestNote(r, digest) {
  return r && r.digest !== digest ? h('span', { class: 'bad' }, ' (bound to a different digest: not counted)') : null;
}

function names(c, keys, given) {
  const byKey = new Map((given || []).map(m => [m.key, m.name]));
  return (keys || []).map((k, i) => [i ? ', ' : '', h('span', { class: 'person', title: k }, byKey.get(k) || c.nameOf(k))]);
}

function urlParts(u) {
  try {
    const x = new URL(u);
    return [h('span', { class: 'scheme' }, x.protocol + '//'), h('strong', { class: 'host' }, x.host), h('span', {}, u.slice(x.protocol.length + 2 + x.host.length))];
  } catch { return [u]; }
}

// people draws keys as names, each with its key id on hover.
function people(c, keys, cls, mark = '', note = null) {
  return keys.map((k, i) => [i ? ', ' : '', h('span', { class: 'person ' + (cls || ''), title: k }, mark + c.nameOf(k) + (note ? note(k) : ''))]);
}

// quoted is a reason after a name: ` (“why”)`, or nothing.
const quoted = why => (why ? ` (“${why}”)` : '');

// assignmentText is which key filled which group's slot.
function assignmentText(c, a) {
  return Object.entries(a || {}).sort((x, y) => (x[1] + x[0]).localeCompare(y[1] + y[0])).map(([k, g], i) => [i ? ', ' : '', h('span', { class: 'person', title: k }, `${c.nameOf(k)} for ${g}`)]);
}

function requestCard(c, e, r, prefix) {
  const p = e.v.payload;
  if (!r) return cardShell(c, e, 'request', h('p', {}, 'A request this page could not follow.'), prefix);
  const key = 'req:' + r.id;
  const secret = [...c.secrets.values()].find(s => s.service === p.service && !s.revoked);
  const m = r.m;
  const pol = r.policy;
  const noSelf = pol && pol.submitter_counts === false;
  const counted = c.counted(r);
  const signers = r.signers || c.gate.signers;
  const waitingOn = signers.filter(s => !r.approvals.has(s) && !r.rejections.has(s) && !(noSelf && s === r.submitter));
  const now = Date.now();
  const inCoolOff = r.state === 'approved' && r.executableAt && Date.parse(r.executableAt) > now;
  const vetoed = r.state === 'rejected' && r.closed && r.closed.reason === 'vetoed';
  const rows = [
    h('div', { class: 'call' }, h('span', { class: 'method' }, p.method), ' ', h('span', { class: 'url' }, urlParts(p.url))),
    h('dl', { class: 'facts' },
      h('dt', {}, 'service'), h('dd', {}, p.service),
      h('dt', {}, 'key'), h('dd', {}, secret ? `${secret.header_name} from the ${p.service} key ${shortKey(secret.secret_id)} (value never shown)` : 'no live key stored for this service'),
      p.template ? [h('dt', {}, 'template'), h('dd', {}, p.template)] : null,
      p.program ? [h('dt', {}, 'program'), h('dd', {}, p.program)] : null,
      p.params && Object.keys(p.params).length ? [h('dt', {}, 'params'), h('dd', {}, Object.entries(p.params).map(([k, v]) => `${k}=${v}`).join(' '))] : null,
      p.headers && Object.keys(p.headers).length ? [h('dt', {}, 'headers'), h('dd', {}, h('pre', {}, Object.entries(p.headers).map(([k, v]) => `${k}: ${v}`).join('\n')))] : null,
      p.body !== undefined ? [h('dt', {}, 'body'), h('dd', {}, h('pre', {}, JSON.stringify(p.body, null, 2)))] : null,
      p.reason ? [h('dt', {}, 'reason'), h('dd', { class: 'why' }, p.reason)] : null,
      h('dt', {}, 'submitted by'), h('dd', {}, h('span', { title: r.submitter }, c.nameOf(r.submitter))),
      h('dt', {}, 'state'), h('dd', { class: 'state' }, h('span', { class: 'badge state-' + (vetoed ? 'vetoed' : r.state) }, vetoed ? 'vetoed' : r.state),
        r.state === 'pending' ? [' ', h('span', { 'data-expires': p.expires_at, class: 'countdown' }, countdown(p.expires_at))] : null,
        r.state === 'approved' && r.executableAt ? [' ', inCoolOff
          ? h('span', { 'data-executes': r.executableAt, class: 'countdown cooloff' }, coolOff(r.executableAt))
          : h('span', { class: 'countdown cooloff' }, coolOff(r.executableAt)),
        ' (at ', when(r.executableAt), ')'] : null,
        r.executed ? ` status ${r.executed.status} in ${r.executed.duration_ms} ms` : null,
        vetoed ? [': stopped in its cool-off by ', people(c, [...r.vetoes.keys()], 'no', '✗ ', k => quoted(r.vetoes.get(k)))]
          : r.closed ? `: ${r.closed.reason}` : null),
      h('dt', {}, 'approvals'), h('dd', { class: 'approvals' },
        h('strong', {}, `${counted.length}/${m ?? '?'}`), ' ',
        people(c, [...r.approvals.keys()], 'yes', '✓ ', k => quoted(r.reasons.get(k)) + (noSelf && k === r.submitter ? ' (not counted)' : '')),
        r.rejections.size ? [' · ', people(c, [...r.rejections.keys()], 'no', '✗ ', k => quoted(r.rejections.get(k)))] : null,
        r.state === 'pending' && waitingOn.length ? [' · waiting on ', people(c, waitingOn, '')] : null),
      r.vetoes.size && !vetoed ? [h('dt', {}, 'vetoes'), h('dd', { class: 'vetoes' }, `${r.vetoes.size}/${pol ? pol.veto : '?'} `, people(c, [...r.vetoes.keys()], 'no', '✗ ', k => quoted(r.vetoes.get(k))))] : null,
      pol && !plainPolicy(pol) ? [h('dt', {}, 'policy'), h('dd', { class: 'policy' }, describePolicy(pol), r.policyFrom === 'server' ? h('span', { class: 'muted' }, ' (as the server says: this page cannot match this service’s rules)') : null)] : null,
      r.assignment && Object.keys(r.assignment).length ? [h('dt', {}, 'slots'), h('dd', { class: 'assignment' }, assignmentText(c, r.assignment))] : null,
      r.rule ? [h('dt', {}, 'rule'), h('dd', {}, ruleText(r.rule))] : null,
      h('dt', {}, 'digest'), h('dd', {}, h('code', { class: 'digest' }, r.digest))),
  ];
  if (r.response && r.state === 'executed') {
    rows.push(h('p', {}, h('a', { href: `#rec-${r.response.seq}` }, `Response: ${r.response.status}, ${r.response.redactions} redacted`)));
  }
  const me = S.me.keyId;
  const signer = signers.includes(me) && c.isSigner(me);
  const open = r.state === 'pending' && new Date(p.expires_at).getTime() > now && signer;
  const busy = S.inflight.has(key);
  const voteReason = reasonText => ({ ...(reasonText ? { reason: reasonText } : {}) });
  if (open) {
    const voted = r.approvals.has(me) || r.rejections.has(me);
    const mayVote = !voted && !(noSelf && r.submitter === me);
    const reason = h('input', { type: 'text', maxlength: '1000', placeholder: 'why (optional)', 'data-field': 'vote-reason' });
    const actions = h('div', { class: 'actions' });
    if (mayVote) {
      actions.append(
        field('Comment with your vote (optional)', reason),
        h('button', { type: 'button', class: 'approve', disabled: busy, 'data-action': 'approve', 'on:click': () => act(c, key, 'gate.approve', { request_id: r.id, request_digest: e.v.digest, ...voteReason(reason.value.trim()) }) }, 'Approve'),
        h('button', { type: 'button', class: 'danger', disabled: busy, 'data-action': 'reject', 'on:click': () => act(c, key, 'gate.reject', { request_id: r.id, request_digest: e.v.digest, ...voteReason(reason.value.trim()) }) }, 'Reject'));
    } else if (noSelf && r.submitter === me && !voted) {
      actions.append(h('p', { class: 'muted' }, 'Its rule does not count your own approval: the other signers decide it.'));
    }
    if (r.submitter === me) {
      actions.append(h('button', { type: 'button', disabled: busy, 'data-action': 'cancel', 'on:click': () => act(c, key, 'gate.cancel', { request_id: r.id }) }, 'Cancel request'));
    }
    if (busy) actions.append(h('span', { class: 'muted' }, ' sending…'));
    rows.push(actions);
  }
  if (inCoolOff && signer) {
    // the veto: a gate.reject during the cool-off, bound to the digest
    const actions = h('div', { class: 'actions veto' });
    if (!r.vetoes.has(me)) {
      const reason = h('input', { type: 'text', maxlength: '1000', placeholder: 'why stop it', 'data-field': 'veto-reason' });
      actions.append(
        field(`Reason to veto (${pol ? `${pol.veto} ${pol.veto === 1 ? 'veto stops' : 'vetoes stop'} it` : 'a veto may stop it'})`, reason),
        h('button', { type: 'button', class: 'danger', disabled: busy, 'data-action': 'veto', 'on:click': () => act(c, key, 'gate.reject', { request_id: r.id, request_digest: e.v.digest, ...voteReason(reason.value.trim()) }) }, 'Veto'));
    } else {
      actions.append(h('p', { class: 'muted' }, 'You vetoed it.'));
    }
    if (r.submitter === me) {
      actions.append(h('button', { type: 'button', disabled: busy, 'data-action': 'cancel', 'on:click': () => act(c, key, 'gate.cancel', { request_id: r.id }) }, 'Cancel request'));
    }
    if (busy) actions.append(h('span', { class: 'muted' }, ' sending…'));
    rows.push(actions);
  }
  if (S.errors.has(key)) rows.push(h('p', { class: 'error', role: 'alert' }, S.errors.get(key)));
  const card = cardShell(c, e, 'request', rows, prefix);
  card.classList.add('request');
  if (r.state === 'approved') card.classList.add('approved');
  if (!prefix) card.id = `req-${r.id}`;
  return card;
}

// act signs and posts one vote; the button stays disabled until the
// server has answered, and its refusal is shown in its own words.
async function act(c, key, kind, fields) {
  if (S.inflight.has(key)) return;
  S.inflight.set(key, true);
  S.errors.delete(key);
  update();
  try {
    const rec = await S.session.post(c.id, kind, fields);
    S.inflight.delete(key);
    await ingest(c, rec);
  } catch (e) {
    S.inflight.delete(key);
    S.errors.set(key, 'The server refused: ' + errText(e));
    update();
  }
}

function responseBody(p) {
  let body = p.body || '';
  let pretty = body;
  if (p.body_encoding !== 'base64' && /json/i.test(p.content_type || '')) {
    try { pretty = JSON.stringify(JSON.parse(body), null, 2); } catch { /* as sent */ }
  }
  const lines = pretty.split('\n').length;
  const pre = h('pre', { class: 'body' }, p.body_encoding === 'base64' ? `(binary, ${body.length} characters of base64)\n${body}` : pretty);
  return [
    h('p', {}, h('a', { href: `#/c/${p.conversation}/r/${p.request_id}` }, 'request ' + shortKey(p.request_id)),
      ` answered ${p.status} ${p.content_type || ''}`, p.redactions ? `, ${p.redactions} occurrence(s) of the key redacted` : ', nothing redacted',
      p.truncated ? ', body truncated to 64 KiB' : ''),
    lines > 20 || pretty.length > 2000 ? h('details', {}, h('summary', {}, `Body (${lines} lines)`), pre) : pre,
  ];
}

function rulesTable(rules) {
  if (!rules.length) return h('p', { class: 'muted' }, 'No threshold rules: every request needs the default.');
  const more = rules.some(r => !plainRule(r));
  return h('table', { class: 'rules' },
    h('thead', {}, h('tr', {}, h('th', {}, 'service'), h('th', {}, 'method'), h('th', {}, 'endpoint'), h('th', {}, 'M'), more ? h('th', {}, 'policy') : null)),
    h('tbody', {}, rules.map(r => h('tr', {}, h('td', {}, r.service), h('td', {}, r.method), h('td', {}, r.endpoint), h('td', {}, String(r.required_approvals)),
      more ? h('td', {}, plainRule(r) ? '' : describePolicy(policyOf(r.required_approvals, r))) : null))));
}

// groupsList draws groups, each with its members by name.
function groupsList(c, groups, always) {
  const names = Object.keys(groups || {}).sort();
  if (!names.length) return always ? null : null;
  return h('ul', { class: 'groups', 'aria-label': 'groups' }, names.map(g => h('li', { 'data-group': g }, h('strong', {}, g), ': ',
    groups[g].length ? people(c, groups[g], '') : h('span', { class: 'muted' }, 'nobody'))));
}

// groupDiffItems draws a change of groups as diff lines.
function groupDiffItems(c, changes) {
  return (changes || []).map(d => h('li', {}, d.dropped ? h('del', {}, `− group ${d.group}`)
    : [d.set ? h('ins', {}, `+ group ${d.group}`) : `group ${d.group}`, ': ',
      d.added.map((k, i) => [i ? ' ' : '', h('ins', { title: k }, '+' + c.nameOf(k))]),
      d.removed.length ? ' ' : '', d.removed.map((k, i) => [i ? ' ' : '', h('del', { title: k }, '−' + c.nameOf(k))]),
      !d.added.length && !d.removed.length ? h('span', { class: 'muted' }, 'empty') : null]));
}

function proposalCard(c, e, prefix) {
  const p = e.v.payload;
  const pr = c.proposals.get(p.proposal_id);
  const key = 'prop:' + p.proposal_id;
  const diff = h('ul', { class: 'diff' });
  for (const m of p.add || []) diff.append(h('li', {}, h('ins', {}, `+ ${m.name} `), h('code', { title: m.key }, shortKey(m.key))));
  for (const k of p.remove || []) diff.append(h('li', {}, h('del', {}, `− ${pr ? pr.before.members.get(k) || shortKey(k) : shortKey(k)}`)));
  if (p.required_approvals && pr) diff.append(h('li', {}, 'M: ', h('del', {}, String(pr.before.m)), ' → ', h('ins', {}, String(p.required_approvals))));
  if (p.rules && pr) {
    for (const r of ruleDiff(pr.before.rules, p.rules)) {
      diff.append(h('li', {}, r.to === null ? h('del', {}, `− rule ${r.rule} → ${r.from}`)
        : r.from === null ? h('ins', {}, `+ rule ${r.rule} → ${r.to}`)
          : [`rule ${r.rule}: `, h('del', {}, r.from), ' → ', h('ins', {}, r.to)]));
    }
  }
  if (p.groups && pr) diff.append(...groupDiffItems(c, groupDiff(pr.before.groups, p.groups)));
  const rows = [h('p', {}, 'Proposes a membership change:'), diff];
  if (pr) {
    rows.push(h('p', {}, `${pr.approvals.size}/${pr.needed.length} approvals: `, [...pr.approvals].map((k, i) => [i ? ', ' : '', h('span', { class: 'person yes', title: k }, '✓ ' + c.nameOf(k))]),
      pr.open ? '' : ` · ${pr.outcome}`));
    if (pr.open && pr.needed.includes(S.me.keyId) && !pr.approvals.has(S.me.keyId)) {
      rows.push(h('div', { class: 'actions' }, h('button', { type: 'button', class: 'approve', disabled: S.inflight.has(key), 'data-action': 'approve-proposal', 'on:click': () => act(c, key, 'member.approve', { proposal_id: pr.id, proposal_digest: e.v.digest }) }, 'Approve change')));
    }
  }
  if (S.errors.has(key)) rows.push(h('p', { class: 'error', role: 'alert' }, S.errors.get(key)));
  return cardShell(c, e, 'proposal', rows, prefix);
}

// ---- the gateway panel and the request form --------------------------------

// groupsEditor edits a whole set of groups: each a name and the signers
// (members, before the gateway is on) in it, chosen from a list.
// reset(groups, keys) refills it; value() is the set as the wire has it.
function groupsEditor(c, label) {
  let rows = []; // {name, keys: Set}
  let keys = [];
  const list = h('div', { class: 'groups-edit' });
  const draw = () => {
    replace(list, rows.length ? null : h('p', { class: 'muted' }, 'No groups.'), rows.map((row, i) => {
      const name = h('input', { type: 'text', value: row.name, maxlength: '32', pattern: '[a-z0-9_\\-]{1,32}', autocomplete: 'off', 'data-field': 'group-name', placeholder: 'e.g. finance' });
      name.addEventListener('input', () => { row.name = name.value.trim(); });
      return h('fieldset', { class: 'group-row' },
        h('legend', {}, `${label} ${i + 1}`),
        field('Group name (a-z, 0-9, _ and -)', name),
        h('div', { class: 'members-pick' }, keys.map(k => {
          const box = h('input', { type: 'checkbox', checked: row.keys.has(k), 'data-key': k });
          box.id = `g${Math.random().toString(36).slice(2)}`;
          box.addEventListener('change', () => { if (box.checked) row.keys.add(k); else row.keys.delete(k); });
          return h('span', { class: 'check' }, box, h('label', { for: box.id, title: k }, c.nameOf(k)));
        })),
        h('button', { type: 'button', class: 'small', 'on:click': () => { rows.splice(i, 1); draw(); } }, `Remove group ${row.name || i + 1}`));
    }), h('button', { type: 'button', class: 'small', 'data-action': 'add-group', 'on:click': () => { rows.push({ name: '', keys: new Set() }); draw(); } }, 'Add a group'));
  };
  return {
    el: list,
    reset(groups, ks) {
      keys = ks.slice();
      rows = Object.keys(groups || {}).sort().map(g => ({ name: g, keys: new Set(groups[g]) }));
      draw();
    },
    // setKeys changes who may be chosen, keeping what was chosen
    setKeys(ks) {
      keys = ks.slice();
      for (const row of rows) for (const k of [...row.keys]) if (!keys.includes(k)) row.keys.delete(k);
      draw();
    },
    // value is the set, or a string saying what is wrong with it
    value() {
      const out = {};
      for (const row of rows) {
        if (!/^[a-z0-9_-]{1,32}$/.test(row.name)) return `group name "${row.name}": use 1 to 32 of a-z, 0-9, _ and -`;
        if (out[row.name]) return `group ${row.name} is named twice`;
        out[row.name] = keys.filter(k => row.keys.has(k));
      }
      return out;
    },
  };
}


function buildForms(c, side, panel, forms) {
  const msg = h('p', { class: 'msg', role: 'alert' });
  forms.msg = msg;

  // enable (admin, gateway off)
  const m = h('input', { type: 'number', min: '1', value: '2', required: true });
  forms.enableGroups = groupsEditor(c, 'Group');
  forms.enableGroups.reset({}, [...c.members.keys()]);
  forms.enable = h('form', { class: 'enable', 'aria-label': 'enable the gateway' },
    field('Approvals required (M)', m, 'M distinct signers must approve each call. Every member becomes a signer.'),
    h('h3', {}, 'Groups (optional)'),
    h('p', { class: 'hint' }, 'Name groups of signers (finance, security…) so that a rule can require approvals from each.'),
    forms.enableGroups.el,
    h('button', { type: 'submit', 'data-action': 'enable' }, 'Enable'));
  forms.enable.addEventListener('submit', ev => {
    ev.preventDefault();
    const groups = forms.enableGroups.value();
    if (typeof groups === 'string') { msg.textContent = groups; return; }
    submit(c, forms.enable, msg, 'gate.enable', () => ({ required_approvals: Number(m.value), ...(Object.keys(groups).length ? { groups } : {}) }));
  });

  // groups: a signer proposes the whole new set; every signer approves
  forms.groupsEd = groupsEditor(c, 'Group');
  forms.groups = h('form', { class: 'groups-change', 'aria-label': 'change the groups' },
    h('h3', {}, 'Change the groups'),
    h('p', { class: 'hint' }, 'Proposes the whole new set of groups: every signer must approve, and open requests are cancelled when it applies.'),
    forms.groupsEd.el,
    h('button', { type: 'submit', 'data-action': 'propose-groups' }, 'Propose these groups'));
  forms.groups.addEventListener('submit', ev => {
    ev.preventDefault();
    const groups = forms.groupsEd.value();
    if (typeof groups === 'string') { msg.textContent = groups; return; }
    submit(c, forms.groups, msg, 'member.propose', () => ({ proposal_id: crypto.randomUUID(), groups }));
  });

  // rules: add (proposes the whole new set; every signer approves)
  const services = S.catalog ? S.catalog.services.map(s => s.name) : [];
  const rsvc = h('select', {}, h('option', { value: '*' }, '* (any)'), services.map(s => h('option', { value: s }, s)));
  const rend = h('input', { type: 'text', value: '*' });
  const rmeth = h('select', {}, ['*', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map(x => h('option', { value: x }, x)));
  const rm = h('input', { type: 'number', min: '1', value: '2' });
  const rtpl = h('select', {}, h('option', { value: '' }, '(none)'), (S.catalog ? S.catalog.templates : []).map(t => h('option', { value: t.name }, `${t.name} (suggests ${t.suggested_approvals})`)));
  rtpl.addEventListener('change', () => {
    const t = S.catalog.templates.find(x => x.name === rtpl.value);
    if (!t) return;
    rsvc.value = t.service; rend.value = t.endpoint; rmeth.value = t.method; rm.value = String(t.suggested_approvals);
    check();
  });
  const advice = h('div', { class: 'advice', role: 'status' });
  // what a rule may say beyond M (PROTOCOL 9); defaults are left out
  const rreq = h('div', { class: 'require' });
  forms.requireFor = groups => {
    const names = Object.keys(groups).sort();
    const had = Object.fromEntries([...rreq.querySelectorAll('input[data-group]')].map(i => [i.dataset.group, i.value]));
    replace(rreq, names.length ? names.map(g => {
      const i = h('input', { type: 'number', min: '0', value: had[g] || '0', 'data-group': g });
      i.addEventListener('change', check);
      return field(`Approvals required from ${g}`, i, `${groups[g].length} in ${g}; 0: none required`);
    }) : h('p', { class: 'hint' }, 'No groups are set: a rule can require approvals from a group once groups are named.'));
  };
  const rself = h('input', { type: 'checkbox', 'data-field': 'no-self' });
  const rreason = h('input', { type: 'checkbox', 'data-field': 'reason-required' });
  const rdelay = h('input', { type: 'number', min: '0', step: 'any', value: '0', 'data-field': 'delay-minutes' });
  const rveto = h('input', { type: 'number', min: '1', value: '1', 'data-field': 'veto' });
  const newRule = () => {
    const r = { service: rsvc.value, endpoint: rend.value.trim() || '*', method: rmeth.value, required_approvals: Number(rm.value) };
    const req = [...rreq.querySelectorAll('input[data-group]')].filter(i => Number(i.value) > 0).map(i => ({ group: i.dataset.group, approvals: Number(i.value) }));
    if (req.length) r.require = req;
    if (rself.checked) r.submitter_counts = false;
    if (rreason.checked) r.reason_required = true;
    const delay = Math.round(Number(rdelay.value) * 60);
    if (delay > 0) {
      r.delay_seconds = delay;
      if (Number(rveto.value) > 1) r.veto = Number(rveto.value);
    }
    return r;
  };
  const newRules = () => [...c.gate.rules, newRule()];
  let checkSeq = 0;
  const check = async () => {
    const mine = ++checkSeq;
    try {
      const res = await S.session.checkRules(c.id, newRules());
      if (mine !== checkSeq) return;
      replace(advice, res.error ? h('p', { class: 'error' }, res.error.message) : null,
        (res.shadows || []).map(s => h('p', { class: 'warn' }, 'note: ' + s)));
    } catch (e) { if (mine === checkSeq) replace(advice, h('p', { class: 'error' }, errText(e))); }
  };
  for (const x of [rsvc, rend, rmeth, rm, rself, rreason, rdelay, rveto]) x.addEventListener('change', check);
  rself.id = `rself-${c.id}`;
  rreason.id = `rreason-${c.id}`;
  forms.rule = h('form', { class: 'rule-add', 'aria-label': 'add a rule' },
    h('h3', {}, 'Add a rule'),
    field('From a template', rtpl, 'Fills in the fields and the template’s suggested M.'),
    field('Service', rsvc), field('Endpoint', rend, 'A template pattern like /item/{id}.json, a path, or *'), field('Method', rmeth), field('Approvals (M)', rm),
    h('details', { class: 'more' }, h('summary', {}, 'More than a number: groups, no self-approval, reason, cool-off'),
      rreq,
      h('div', { class: 'check' }, rself, h('label', { for: rself.id }, 'No self-approval: the submitter’s approval does not count')),
      h('div', { class: 'check' }, rreason, h('label', { for: rreason.id }, 'Reason required: a request must say why')),
      field('Cool-off in minutes (0: none)', rdelay, 'Between the last approval and the call; signers can veto during it.'),
      field('Vetoes that stop it', rveto, 'With a cool-off: how many signers’ rejections during it stop the call.')),
    advice, h('button', { type: 'submit', 'data-action': 'propose-rule' }, 'Propose the rule'));
  forms.rule.addEventListener('submit', ev => {
    ev.preventDefault();
    submit(c, forms.rule, msg, 'member.propose', () => ({ proposal_id: crypto.randomUUID(), rules: newRules() }));
  });

  // API keys: sealed in this page to the gateway's box key; only for the
  // services that take one (auth required or optional): the gateway
  // refuses a key for one with auth none, which would never be sent
  const keyed = S.catalog ? S.catalog.services.filter(s => s.auth === 'required' || s.auth === 'optional').map(s => s.name) : [];
  const ssvc = h('select', {}, keyed.map(s => h('option', { value: s }, s)));
  const hname = h('input', { type: 'text', value: 'Authorization' });
  const htpl = h('input', { type: 'text', value: 'Bearer {value}' });
  const secret = h('input', { type: 'password', autocomplete: 'off', required: true });
  const ttl = h('input', { type: 'number', min: '0', value: '720' });
  const applyDefaults = () => {
    const s = S.catalog && S.catalog.services.find(x => x.name === ssvc.value);
    hname.value = (s && s.header_name) || 'Authorization';
    htpl.value = (s && s.header_template) || 'Bearer {value}';
  };
  ssvc.addEventListener('change', applyDefaults);
  applyDefaults();
  forms.secret = h('form', { class: 'secret-add', 'aria-label': 'add an API key' },
    h('h3', {}, 'Add an API key'),
    field('Service', ssvc), field('Header name', hname), field('Header template', htpl, '{value} is replaced by the key'),
    field('API key', secret, 'Sealed in this page to the gateway’s box key; the server stores it encrypted and never shows it.'),
    field('Lifetime in hours (0: no expiry)', ttl),
    h('button', { type: 'submit', 'data-action': 'add-secret' }, 'Seal and store'));
  forms.secret.addEventListener('submit', ev => {
    ev.preventDefault();
    submit(c, forms.secret, msg, 'gate.secret', async () => {
      const boxKey = c.gate.boxKey || S.session.gateway.box_key;
      const sealed = await sealBox(utf8(secret.value), boxKey);
      secret.value = '';
      const f = { secret_id: crypto.randomUUID(), service: ssvc.value, header_name: hname.value, header_template: htpl.value, sealed };
      const hours = Number(ttl.value);
      if (hours > 0) f.ttl_seconds = Math.round(hours * 3600);
      return f;
    });
  });

  // members: before the gateway the admin adds and removes them; once it
  // is on, a signer proposes the change and every signer approves it
  const mname = h('input', { type: 'text', maxlength: String(MAX_NAME_BYTES) });
  const mkey = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
  forms.member = h('form', { class: 'member-add', 'aria-label': 'add a member' },
    h('h3', {}, 'Add a member'), field('Name', mname), field('Key id', mkey, 'The 43-character key id they copied from twokey.'),
    h('button', { type: 'submit', 'data-action': 'add-member' }, 'Add'));
  forms.member.addEventListener('submit', ev => {
    ev.preventDefault();
    const key = mkey.value.trim();
    const name = mname.value.trim();
    if (!name || !isCanonicalKeyId(key)) { msg.textContent = 'Give a name and a 43-character key id.'; return; }
    if (c.gate.enabled) submit(c, forms.member, msg, 'member.propose', () => ({ proposal_id: crypto.randomUUID(), add: [{ key, name }] }));
    else submit(c, forms.member, msg, 'member.add', () => ({ key, name }));
  });

  const reqForm = requestForm(c);
  forms.request = reqForm;
  replace(side, h('h2', {}, 'API Gateway'), panel, msg, forms.enable, reqForm, forms.secret, forms.rule, forms.groups, forms.member);
}

async function submit(c, form, msg, kind, fields) {
  const btn = form.querySelector('button[type=submit]');
  btn.disabled = true;
  msg.textContent = '';
  try {
    const rec = await S.session.post(c.id, kind, await fields());
    await ingest(c, rec);
    msg.textContent = kind === 'gate.secret' ? 'Key sealed and stored.' : 'Sent.';
  } catch (e) { msg.textContent = 'The server refused: ' + errText(e); }
  btn.disabled = false;
}

function renderPanel(c, panel, forms) {
  const me = S.me.keyId;
  const isAdmin = c.admin === me;
  forms.enable.hidden = c.gate.enabled || !isAdmin;
  forms.groups.hidden = !c.isSigner(me);
  // the group editors follow the members and the groups in force; a
  // draft is kept while neither changes
  const gkey = JSON.stringify([c.gate.enabled ? c.gate.signers : [...c.members.keys()], c.gate.groups]);
  if (forms.groupsKey !== gkey) {
    forms.groupsKey = gkey;
    if (c.gate.enabled) forms.groupsEd.reset(c.gate.groups, c.gate.signers);
    else forms.enableGroups.setKeys([...c.members.keys()]);
    forms.requireFor(c.gate.groups);
  }
  forms.rule.hidden = !c.isSigner(me);
  forms.secret.hidden = !c.isSigner(me);
  forms.request.hidden = !c.isSigner(me);
  const canChange = c.gate.enabled ? c.isSigner(me) : isAdmin;
  forms.member.hidden = !canChange;
  forms.member.querySelector('button').textContent = c.gate.enabled ? 'Propose adding' : 'Add';
  const live = [...c.secrets.values()].filter(s => !s.revoked);
  replace(panel,
    c.gate.enabled ? null : h('div', { class: 'banner warn', role: 'status' }, 'The gateway is not enabled: nothing can be called yet.', isAdmin ? ' Choose M below and enable it.' : ` Only the admin (${c.nameOf(c.admin)}) can enable it.`),
    h('h3', {}, 'Members'),
    h('ul', { class: 'members' }, [...c.members].map(([k, n]) => h('li', {}, h('span', { title: k }, n), ' ', h('code', {}, shortKey(k)),
      k === c.admin ? h('span', { class: 'badge' }, 'admin') : null, c.isSigner(k) ? h('span', { class: 'badge ok' }, 'signer') : null,
      canChange && k !== c.admin ? [' ', h('button', {
        type: 'button', class: 'small danger', 'aria-label': `${c.gate.enabled ? 'Propose removing' : 'Remove'} ${n}`,
        'on:click': () => c.gate.enabled
          ? submit(c, forms.member, forms.msg, 'member.propose', () => ({ proposal_id: crypto.randomUUID(), remove: [k] }))
          : submit(c, forms.member, forms.msg, 'member.remove', () => ({ key: k })),
      }, c.gate.enabled ? 'Propose removing' : 'Remove')] : null))),
    c.gate.enabled ? [
      h('p', { class: 'threshold' }, `Default: ${c.gate.m} of ${c.gate.signers.length} signers must approve.`),
      h('h3', {}, 'Groups'),
      Object.keys(c.gate.groups).length ? groupsList(c, c.gate.groups) : h('p', { class: 'muted' }, 'No groups.'),
      h('h3', {}, 'Rules'),
      c.gate.rules.length ? h('ul', { class: 'rules' }, c.gate.rules.map((r, i) => h('li', {}, `${ruleText(r)} `,
        c.isSigner(me) ? h('button', {
          type: 'button', class: 'small', 'aria-label': `Propose removing the rule ${r.service} ${r.method} ${r.endpoint}`,
          'on:click': () => submit(c, forms.rule, forms.msg, 'member.propose', () => ({ proposal_id: crypto.randomUUID(), rules: c.gate.rules.filter((_, j) => j !== i) })),
        }, 'Remove') : null))) : h('p', { class: 'muted' }, 'No rules: every request needs the default M.'),
      h('h3', {}, 'API keys'),
      live.length ? h('ul', { class: 'secrets' }, live.map(s => h('li', {}, `${s.service}: ${s.header_name}: ${s.header_template} `,
        s.expires_at ? ['until ', when(s.expires_at), ' '] : 'no expiry ',
        c.isSigner(me) ? h('button', {
          type: 'button', class: 'small danger', 'aria-label': `Revoke the ${s.service} key ${shortKey(s.secret_id)}`,
          'on:click': () => submit(c, forms.secret, forms.msg, 'gate.secret.revoke', () => ({ secret_id: s.secret_id })),
        }, 'Revoke') : null))) : h('p', { class: 'muted' }, 'No live API key.'),
    ] : null);
}

function requestForm(c) {
  const tpls = S.catalog ? S.catalog.templates : [];
  const tpl = h('select', { name: 'template' }, tpls.map(t => h('option', { value: t.name }, `${t.name}: ${t.method} ${t.endpoint}`)));
  const params = h('div', { class: 'params' });
  const expires = h('select', { name: 'expires' }, [['15 minutes', 900], ['1 hour', 3600], ['4 hours', 14400], ['1 day', 86400], ['7 days', 604800]].map(([l, s]) => h('option', { value: String(s), selected: s === 3600 }, l)));
  const preview = h('pre', { class: 'preview', 'aria-live': 'polite', 'aria-label': 'preview' });
  const msg = h('p', { class: 'msg', role: 'alert' });
  const reason = h('textarea', { name: 'reason', rows: '2', maxlength: '4000', placeholder: 'why this call is needed' });
  const reasonHint = h('span', { class: 'hint', id: `reason-hint-${c.id}` });
  reason.setAttribute('aria-describedby', reasonHint.id);
  // the reason is required when the rule that would apply says so
  const needReason = () => {
    const rule = last && last.rule;
    const need = !!(rule && rule.reason_required);
    reason.required = need;
    reasonHint.textContent = need ? `Required: the rule ${ruleText(rule)} asks every request to say why.` : 'Optional; shown to the signers on the request’s card.';
    return need;
  };
  let inputs = {};
  let last = null;
  let seq = 0;
  const values = () => Object.fromEntries(Object.entries(inputs).filter(([, i]) => i.value !== '').map(([k, i]) => [k, i.value]));
  const refresh = async () => {
    const mine = ++seq;
    const t = tpls.find(x => x.name === tpl.value);
    const missing = t ? (t.params || []).filter(p => p.required && !(inputs[p.name] && inputs[p.name].value !== '')).map(p => p.name) : [];
    if (missing.length) {
      last = null;
      preview.textContent = `Fill in ${missing.join(', ')} to see the call.`;
      return;
    }
    try {
      const pv = await S.session.preview(c.id, tpl.value, values());
      if (mine !== seq) return;
      last = pv;
      preview.textContent = pv.lines.join('\n');
      preview.classList.remove('error');
      needReason();
    } catch (e) {
      if (mine !== seq) return;
      last = null;
      preview.textContent = errText(e);
      preview.classList.add('error');
    }
  };
  let timer = 0;
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 200); };
  const build = () => {
    const t = tpls.find(x => x.name === tpl.value);
    inputs = {};
    replace(params, t && t.params && t.params.length ? t.params.map(p => {
      const type = p.type === 'integer' || p.type === 'number' ? 'number' : 'text';
      const i = h('input', { type, value: p.default || '', placeholder: p.example || '', required: p.required, 'data-param': p.name });
      if (p.type === 'boolean') i.placeholder = p.example || 'true or false';
      i.addEventListener('input', soon);
      inputs[p.name] = i;
      return field(`${p.name}${p.required ? ' (required)' : ''}`, i, [p.description, p.in ? `in the ${p.in}` : ''].filter(Boolean).join(' · '));
    }) : h('p', { class: 'muted' }, 'This template takes no parameters.'));
    refresh();
  };
  tpl.addEventListener('change', build);
  // novalidate: the form says what is missing in its own words (a reason
  // the rule requires, a parameter), after the preview
  const form = h('form', { class: 'request-form', 'aria-label': 'request a call', novalidate: true },
    h('h3', {}, 'Request a call'),
    field('Template', tpl), params, field('Expires after', expires),
    h('div', { class: 'field' }, h('label', { for: reason.id = `reason-${c.id}` }, 'Reason'), reason, reasonHint),
    h('p', { class: 'hint' }, 'Preview, exactly as twokey request --preview shows it:'), preview,
    h('button', { type: 'submit', 'data-action': 'submit-request' }, 'Submit request (counts as your approval)'), msg);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    await refresh();
    if (!last) { msg.textContent = 'Fix the request first: ' + preview.textContent; return; }
    const why = reason.value.trim();
    if (needReason() && !why) { msg.textContent = `Say why: the rule ${ruleText(last.rule)} requires a reason (1 to 1,000 characters).`; reason.focus(); return; }
    if (codePoints(why) > 1000) { msg.textContent = `A reason is at most 1,000 characters; this one has ${codePoints(why)}.`; return; }
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    msg.textContent = '';
    try {
      const q = last.request;
      const f = { request_id: crypto.randomUUID(), service: q.service, method: q.method, url: q.url, expires_at: new Date(Date.now() + Number(expires.value) * 1000).toISOString() };
      if (q.template) f.template = q.template;
      if (q.headers && Object.keys(q.headers).length) f.headers = q.headers;
      if (q.body !== undefined && q.body !== null) f.body = q.body;
      if (q.params && Object.keys(q.params).length) f.params = q.params;
      if (why) f.reason = why;
      const rec = await S.session.post(c.id, 'gate.request', f);
      await ingest(c, rec);
      msg.textContent = 'Submitted.';
      reason.value = '';
      location.hash = `#/c/${c.id}/r/${f.request_id}`;
    } catch (e) { msg.textContent = 'The server refused: ' + errText(e); }
    btn.disabled = false;
  });
  build();
  return form;
}

start();
