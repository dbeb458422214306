// session.js: every call the page makes to its twokey server. Envelopes are
// signed here with the active identity's non-extractable key; the bearer
// token lives in this module's memory only (never a cookie, never storage)
// and is renewed before it expires.

import { signEnvelope, randomNonce } from './crypto.js';

export class ServerError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const RENEW_BEFORE_MS = 5 * 60 * 1000; // renew 5 minutes before the token expires

export class Session {
  constructor(identity, { onState } = {}) {
    this.id = identity;
    this.token = '';
    this.expiresAt = 0;
    this.gateway = null; // {signing_key, box_key, version}
    this.renewTimer = 0;
    this.onState = onState || (() => {});
    this.ws = null;
    this.wsHandlers = null;
    this.closed = false;
  }

  static now() { return new Date().toISOString(); }

  async fetchJSON(method, path, body, auth) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) headers.Authorization = 'Bearer ' + await this.bearer();
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' });
    } catch (e) {
      throw new ServerError(0, 'unavailable', `cannot reach the twokey server (${e.message}); is it running?`);
    }
    let data = null;
    const text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!resp.ok) {
      const err = data && data.error ? data.error : { code: 'http_' + resp.status, message: `the server answered ${resp.status}` };
      if (resp.status === 401 && auth && !this.retrying) {
        this.token = '';
        this.retrying = true;
        try { return await this.fetchJSON(method, path, body, auth); } finally { this.retrying = false; }
      }
      throw new ServerError(resp.status, err.code, err.message);
    }
    return data;
  }

  get(path) { return this.fetchJSON('GET', path, undefined, true); }

  async loadGateway() {
    this.gateway = await this.fetchJSON('GET', '/v1/gateway');
    return this.gateway;
  }

  // bearer returns a live token, opening a session when there is none.
  async bearer() {
    if (this.token && Date.now() < this.expiresAt - 10_000) return this.token;
    if (!this.opening) this.opening = this.open().finally(() => { this.opening = null; });
    await this.opening;
    return this.token;
  }

  async open() {
    const { envelope } = await signEnvelope(this.id, 'session.open', { created_at: Session.now(), nonce: randomNonce() });
    const s = await this.fetchJSON('POST', '/v1/sessions', envelope);
    this.token = s.token;
    this.expiresAt = new Date(s.expires_at).getTime();
    clearTimeout(this.renewTimer);
    const renewIn = Math.max(30_000, this.expiresAt - Date.now() - RENEW_BEFORE_MS);
    this.renewTimer = setTimeout(() => { if (!this.closed) this.open().catch(e => this.onState('error', e.message)); }, renewIn);
    this.onState('session', s.expires_at);
  }

  // header is the fields every member payload starts with.
  header(conv) {
    const h = { conversation: conv, created_at: Session.now() };
    if (this.gateway) h.gateway = this.gateway.signing_key;
    return h;
  }

  async sign(kind, payload) { return signEnvelope(this.id, kind, payload); }

  // post signs payload as kind and posts it to conv; returns the record.
  async post(conv, kind, fields) {
    const payload = { ...this.header(conv), ...fields };
    if (!kind.startsWith('gate.') && !kind.startsWith('member.')) delete payload.gateway;
    const { envelope } = await this.sign(kind, payload);
    return this.fetchJSON('POST', `/v1/conversations/${encodeURIComponent(conv)}/messages`, envelope);
  }

  async createConversation(name, members) {
    const payload = { conversation: crypto.randomUUID(), created_at: Session.now(), name, members };
    const { envelope } = await this.sign('conversation.create', payload);
    const record = await this.fetchJSON('POST', '/v1/conversations', envelope);
    return { id: payload.conversation, record };
  }

  conversations() { return this.get('/v1/conversations').then(r => r.conversations || []); }
  records(conv, after, limit = 500) { return this.get(`/v1/conversations/${encodeURIComponent(conv)}/messages?after=${after}&limit=${limit}`).then(r => r.records || []); }
  gateInfo(conv) { return this.get(`/v1/conversations/${encodeURIComponent(conv)}/gate`); }
  requestState(conv, id) { return this.get(`/v1/conversations/${encodeURIComponent(conv)}/requests/${encodeURIComponent(id)}`); }
  requestStates(conv) { return this.get(`/v1/conversations/${encodeURIComponent(conv)}/requests`).then(r => r.requests || []); }
  catalog() { return this.fetchJSON('GET', '/v1/catalog'); }
  preview(conv, template, params) { return this.fetchJSON('POST', `/v1/conversations/${encodeURIComponent(conv)}/preview`, { template, params }, true); }
  checkRules(conv, rules) { return this.fetchJSON('POST', `/v1/conversations/${encodeURIComponent(conv)}/rules/check`, { rules }, true); }

  // connect keeps one WebSocket open, reconnecting with backoff, and calls
  // handlers.open(ws) after each (re)connect so the caller resubscribes.
  connect(handlers) {
    this.wsHandlers = handlers;
    this.backoff = 500;
    this.dial();
  }

  async dial() {
    if (this.closed) return;
    let token;
    try { token = await this.bearer(); } catch (e) {
      this.onState('offline', e.message);
      this.retryDial();
      return;
    }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/v1/ws?token=${encodeURIComponent(token)}`);
    ws.token = token;
    this.ws = ws;
    ws.onopen = () => { this.backoff = 500; this.onState('online'); this.wsHandlers.open(); };
    ws.onmessage = ev => {
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      this.wsHandlers.frame(f);
    };
    ws.onclose = ev => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      // The socket's token expired: unless it was renewed meanwhile, open a
      // new session before reconnecting.
      if (ev.code === 4001 && this.token === ws.token) this.token = '';
      this.onState('offline', ev.reason || 'connection closed');
      this.retryDial();
    };
  }

  retryDial() {
    clearTimeout(this.dialTimer);
    this.dialTimer = setTimeout(() => this.dial(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 15_000);
  }

  subscribe(conv, after) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op: 'subscribe', conversation: conv, after }));
  }

  close() {
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.dialTimer);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.token = '';
  }
}
