// fold.js: a conversation's state, folded from its verified records only.
// Nothing here trusts a summary the server sent: names come from the signed
// membership, a request's call from its signed payload, its outcome from
// the gateway's signed records. (M for a pending request is the one number
// taken from the server's state; the gateway signs it when it closes.)

export const SETTLED = new Set(['executed', 'failed', 'expired', 'rejected', 'cancelled']);

export class Conv {
  constructor(id) {
    this.id = id;
    this.name = '';
    this.admin = '';
    this.members = new Map(); // key id -> name
    this.gate = { enabled: false, signers: [], m: 0, rules: [], boxKey: '' };
    this.requests = new Map(); // request_id -> Req
    this.proposals = new Map(); // proposal_id -> Prop
    this.secrets = new Map(); // secret_id -> metadata
    this.changes = new Map(); // seq of a member.changed -> what it changed (changeOf)
    this.entries = []; // {rec, v}: every record in seq order, verified or not
    this.seq = 0; // last record taken in (verified or not)
    this.chain = null; // its chain value, where the next record links
    this.broken = null; // the first record that failed, {seq, reason}
  }

  nameOf(key) {
    return this.members.get(key) || (key ? key.slice(0, 8) : '?');
  }

  isSigner(key) { return this.gate.enabled && this.gate.signers.includes(key); }

  // apply folds one verified record in.
  apply(rec, v) {
    const p = v.payload;
    const author = v.author;
    switch (v.kind) {
      case 'conversation.create':
        this.name = p.name || '';
        this.admin = author;
        for (const m of p.members || []) this.members.set(m.key, m.name);
        if (!this.members.has(author)) this.members.set(author, author.slice(0, 8));
        break;
      case 'member.add': this.members.set(p.key, p.name); break;
      case 'member.remove': this.members.delete(p.key); break;
      case 'gate.enabled':
        this.gate = { enabled: true, signers: p.signers || [], m: p.required_approvals, rules: p.rules || [], boxKey: p.box_key || '' };
        break;
      case 'gate.secret.stored':
        this.secrets.set(p.secret_id, { ...p, revoked: false, seq: rec.seq });
        break;
      case 'gate.secret.revoked':
        for (const id of p.secret_ids || []) { const s = this.secrets.get(id); if (s) s.revoked = true; }
        break;
      case 'gate.request': {
        const submitter = p.program ? author : author;
        const r = {
          id: p.request_id, payload: p, digest: v.digest, seq: rec.seq, submitter, receivedAt: rec.received_at,
          approvals: new Map(), rejections: new Map(), state: 'pending', m: null, rule: undefined,
          executed: null, response: null, closed: null, closedKind: '', records: [rec.seq],
        };
        if (!p.program) r.approvals.set(author, rec.seq);
        this.requests.set(p.request_id, r);
        break;
      }
      case 'gate.approve': case 'gate.reject': {
        const r = this.requests.get(p.request_id);
        if (!r || p.request_digest !== r.digest) break;
        r.records.push(rec.seq);
        if (v.kind === 'gate.approve') r.approvals.set(author, rec.seq);
        else r.rejections.set(author, p.reason || '');
        break;
      }
      case 'gate.cancel': { const r = this.requests.get(p.request_id); if (r) r.records.push(rec.seq); break; }
      case 'gate.executed': {
        const r = this.requests.get(p.request_id);
        if (!r) break;
        r.records.push(rec.seq);
        r.state = 'executed';
        r.executed = p;
        if (p.required_approvals) r.m = p.required_approvals;
        break;
      }
      case 'gate.response': {
        const r = this.requests.get(p.request_id);
        if (r) { r.records.push(rec.seq); r.response = { ...p, seq: rec.seq }; }
        break;
      }
      case 'gate.failed': case 'gate.expired': case 'gate.rejected': case 'gate.cancelled': {
        const r = this.requests.get(p.request_id);
        if (!r) break;
        r.records.push(rec.seq);
        r.state = v.kind.slice('gate.'.length);
        r.closed = p;
        r.closedKind = v.kind;
        if (p.required_approvals) r.m = p.required_approvals;
        break;
      }
      case 'member.propose': {
        const needed = this.needed(p);
        this.proposals.set(p.proposal_id, {
          id: p.proposal_id, payload: p, digest: v.digest, seq: rec.seq, proposer: author,
          approvals: new Set([author]), needed, open: true, outcome: '',
          before: { members: new Map(this.members), m: this.gate.m, rules: this.gate.rules.slice(), signers: this.gate.signers.slice() },
        });
        break;
      }
      case 'member.approve': {
        const pr = this.proposals.get(p.proposal_id);
        if (pr && pr.open && p.proposal_digest === pr.digest) pr.approvals.add(author);
        break;
      }
      case 'member.changed': {
        this.changes.set(rec.seq, changeOf(this, p));
        this.members = new Map((p.members || []).map(m => [m.key, m.name]));
        this.gate = { ...this.gate, signers: p.signers || [], m: p.required_approvals, rules: p.rules || [] };
        for (const pr of this.proposals.values()) {
          if (!pr.open) continue;
          pr.open = false;
          pr.outcome = pr.id === p.proposal_id ? 'applied' : 'closed by another change';
        }
        break;
      }
      default: break;
    }
  }

  // needed is who must approve a proposal: every signer, or, for a
  // removal alone, every signer but those removed (PROTOCOL 5).
  needed(p) {
    const onlyRemove = !(p.add && p.add.length) && !p.required_approvals && !p.rules && !p.groups;
    const removed = new Set(p.remove || []);
    return this.gate.signers.filter(s => !onlyRemove || !removed.has(s));
  }

  // waitingFor lists the open requests and proposals key has not voted on.
  waitingFor(key, now = Date.now()) {
    const out = [];
    if (!this.isSigner(key)) return out;
    for (const r of this.requests.values()) {
      if (r.state !== 'pending' || new Date(r.payload.expires_at).getTime() <= now) continue;
      if (r.approvals.has(key) || r.rejections.has(key)) continue;
      out.push({ type: 'request', conv: this, item: r, expires: r.payload.expires_at });
    }
    for (const pr of this.proposals.values()) {
      if (pr.open && pr.needed.includes(key) && !pr.approvals.has(key)) out.push({ type: 'proposal', conv: this, item: pr, expires: '' });
    }
    return out;
  }
}

const ruleKey = r => `${r.service} ${r.method} ${r.endpoint}`;

// changeOf says what a member.changed changes in c's state before it:
// members in and out, the threshold, rules added, removed or re-weighted.
// Its label names what changed, so that a rule change is not read as a
// change of members.
export function changeOf(c, p) {
  const after = new Map((p.members || []).map(m => [m.key, m.name]));
  const added = [...after].filter(([k]) => !c.members.has(k)).map(([key, name]) => ({ key, name }));
  const removed = [...c.members].filter(([k]) => !after.has(k)).map(([key, name]) => ({ key, name }));
  const before = new Map(c.gate.rules.map(r => [ruleKey(r), r.required_approvals]));
  const next = new Map((p.rules || []).map(r => [ruleKey(r), r.required_approvals]));
  const rules = [];
  for (const [k, m] of before) if (!next.has(k)) rules.push({ rule: k, from: m, to: null });
  for (const [k, m] of next) if (!before.has(k) || before.get(k) !== m) rules.push({ rule: k, from: before.has(k) ? before.get(k) : null, to: m });
  const threshold = c.gate.m !== p.required_approvals ? { from: c.gate.m, to: p.required_approvals } : null;
  const what = [];
  if (added.length || removed.length) what.push('members');
  if (threshold) what.push('threshold');
  if (rules.length) what.push('rules');
  return { added, removed, rules, threshold, label: (what.length ? what.join(' and ') : 'nothing') + ' changed' };
}
