// fold.js: a conversation's state, folded from its verified records only.
// Nothing here trusts a summary the server sent: names come from the signed
// membership, a request's call from its signed payload, its policy from
// the rules in force when it was submitted (PROTOCOL 6 and 9, matched on
// the catalog's base URL), its outcome from the gateway's signed records,
// checked against what the votes before them allow. Where the page cannot
// work out a request's rule (a service the catalog does not list), the
// policy is the one number set taken from the server's state.
//
// apply returns '' or why a record cannot be believed: the page then draws
// it red, as a record that failed verification, and it changes nothing.

export const SETTLED = new Set(['executed', 'failed', 'expired', 'rejected', 'cancelled']);

const cloneGroups = g => Object.fromEntries(Object.entries(g || {}).map(([k, v]) => [k, (v || []).slice()]));

export class Conv {
  constructor(id) {
    this.id = id;
    this.name = '';
    this.admin = '';
    this.members = new Map(); // key id -> name
    this.gate = { enabled: false, signers: [], m: 0, rules: [], boxKey: '', groups: {} };
    this.requests = new Map(); // request_id -> Req
    this.proposals = new Map(); // proposal_id -> Prop
    this.secrets = new Map(); // secret_id -> metadata
    this.changes = new Map(); // seq of a member.changed -> what it changed (changeOf)
    this.entries = []; // {rec, v}: every record in seq order, verified or not
    this.seq = 0; // last record taken in (verified or not)
    this.chain = null; // its chain value, where the next record links
    this.broken = null; // the first record that failed, {seq, reason}
    this.catalog = null; // services and templates, to match rules on (targetOf)
  }

  nameOf(key) {
    return this.members.get(key) || (key ? key.slice(0, 8) : '?');
  }

  isSigner(key) { return this.gate.enabled && this.gate.signers.includes(key); }

  // groupsOf lists the groups key is in, sorted.
  groupsOf(key) { return Object.keys(this.gate.groups).sort().filter(g => this.gate.groups[g].includes(key)); }

  // apply folds one verified record in; it returns '' or why the record
  // cannot be believed (and then changes nothing).
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
        this.gate = { enabled: true, signers: p.signers || [], m: p.required_approvals, rules: p.rules || [], boxKey: p.box_key || '', groups: cloneGroups(p.groups) };
        break;
      case 'gate.secret.stored':
        this.secrets.set(p.secret_id, { ...p, revoked: false, seq: rec.seq });
        break;
      case 'gate.secret.revoked':
        for (const id of p.secret_ids || []) { const s = this.secrets.get(id); if (s) s.revoked = true; }
        break;
      case 'gate.request': return this.submit(rec, v);
      case 'gate.approve': case 'gate.reject': return this.vote(rec, v);
      case 'gate.cancel': { const r = this.requests.get(p.request_id); if (r) r.records.push(rec.seq); break; }
      case 'gate.approved': return this.approved(rec, v);
      case 'gate.executed': case 'gate.failed': return this.ran(rec, v);
      case 'gate.response': {
        const r = this.requests.get(p.request_id);
        if (r) { r.records.push(rec.seq); r.response = { ...p, seq: rec.seq }; }
        break;
      }
      case 'gate.expired': case 'gate.rejected': case 'gate.cancelled': return this.closed(rec, v);
      case 'member.propose': {
        const needed = this.needed(p);
        this.proposals.set(p.proposal_id, {
          id: p.proposal_id, payload: p, digest: v.digest, seq: rec.seq, proposer: author,
          approvals: new Set([author]), needed, open: true, outcome: '',
          before: { members: new Map(this.members), m: this.gate.m, rules: this.gate.rules.slice(), signers: this.gate.signers.slice(), groups: cloneGroups(this.gate.groups) },
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
        this.gate = { ...this.gate, signers: p.signers || [], m: p.required_approvals, rules: p.rules || [], groups: p.groups ? cloneGroups(p.groups) : this.gate.groups };
        for (const pr of this.proposals.values()) {
          if (!pr.open) continue;
          pr.open = false;
          pr.outcome = pr.id === p.proposal_id ? 'applied' : 'closed by another change';
        }
        // pending and approved requests: the gateway's gate.cancelled
        // (membership_changed) follows for each
        for (const r of this.requests.values()) if (r.state === 'pending' || r.state === 'approved') r.voided = rec.seq;
        break;
      }
      default: break;
    }
    return '';
  }

  // submit takes a gate.request in: its policy is fixed now, from the
  // rules and groups in force (PROTOCOL 9), and the submitter's own
  // approval counts unless the rule says otherwise.
  submit(rec, v) {
    const p = v.payload;
    const author = v.author;
    if (p.reason !== undefined && (typeof p.reason !== 'string' || codePoints(p.reason) > 1000)) return 'its reason is over 1,000 characters; the gateway should have refused it';
    let policy = null;
    let rule;
    const t = this.gate.enabled ? targetOf(this.catalog, p) : null;
    if (t) {
      const th = threshold(this.gate.m, this.gate.rules, t);
      rule = th.rule;
      policy = policyOf(th.m, th.rule);
      if (policy.reason_required && !p.reason) return `rule ${ruleText(th.rule)} requires a reason and this request has none; the gateway should have refused it`;
    }
    const r = {
      id: p.request_id, payload: p, digest: v.digest, seq: rec.seq, submitter: author, receivedAt: rec.received_at,
      approvals: new Map(), reasons: new Map(), rejections: new Map(), vetoes: new Map(), vetoSeqs: new Set(), state: 'pending',
      m: policy ? policy.required_approvals : null, rule, policy, policyFrom: policy ? 'rules' : '',
      signers: this.gate.signers.slice(), groups: cloneGroups(this.gate.groups),
      approvers: null, assignment: null, executableAt: '', approvedSeq: 0, closing: '',
      executed: null, response: null, closed: null, closedKind: '', records: [rec.seq],
    };
    this.requests.set(p.request_id, r);
    if (p.program) return '';
    if (!policy || policy.submitter_counts) {
      r.approvals.set(author, rec.seq);
      this.decide(r);
    }
    return '';
  }

  // decide moves a pending request whose requirement is now met to
  // approved (a rule with a delay: gate.approved follows) or executing.
  decide(r) {
    if (!r.policy || r.state !== 'pending') return;
    const asg = match(r.policy, r.groups, this.counted(r), r.submitter);
    if (!asg) return;
    r.approvers = this.counted(r);
    r.assignment = asg;
    r.state = r.policy.delay_seconds > 0 ? 'approved' : 'executing';
  }

  // counted lists the approvals that count, in the order they came.
  counted(r) {
    const noSelf = r.policy && r.policy.submitter_counts === false;
    return [...r.approvals.keys()].filter(k => r.signers.includes(k) && !(noSelf && k === r.submitter));
  }

  // undecided lists the request's signers who have neither approved nor
  // rejected.
  undecided(r) { return r.signers.filter(s => !r.approvals.has(s) && !r.rejections.has(s)); }

  vote(rec, v) {
    const p = v.payload;
    const author = v.author;
    const r = this.requests.get(p.request_id);
    if (!r || p.request_digest !== r.digest) return ''; // drawn as not counted
    const approve = v.kind === 'gate.approve';
    if (p.reason !== undefined && (typeof p.reason !== 'string' || codePoints(p.reason) > 1000)) return 'its reason is over 1,000 characters; the gateway should have refused it';
    if (r.state === 'approved') {
      if (r.executableAt && Date.parse(rec.received_at) >= Date.parse(r.executableAt)) return `request ${r.id.slice(0, 8)}'s cool-off ended at ${r.executableAt}, before this vote`;
      if (r.vetoes.has(author) || (approve && (r.approvals.has(author) || r.rejections.has(author)))) return `${this.nameOf(author)} votes on request ${r.id.slice(0, 8)} a second time`;
      r.records.push(rec.seq);
      if (approve) { r.approvals.set(author, rec.seq); if (p.reason) r.reasons.set(author, p.reason); return ''; }
      r.vetoes.set(author, p.reason || '');
      r.vetoSeqs.add(rec.seq);
      if (r.policy && r.vetoes.size >= r.policy.veto) r.closing = 'vetoed';
      return '';
    }
    if (r.state === 'pending' && r.policy) {
      if (!r.signers.includes(author)) return `${this.nameOf(author)} was not a signer when request ${r.id.slice(0, 8)} was submitted`;
      if (author === r.submitter && r.policy.submitter_counts === false) return `${this.nameOf(author)} submitted request ${r.id.slice(0, 8)}, whose rule does not count the submitter's vote`;
      if (r.approvals.has(author) || r.rejections.has(author)) return `${this.nameOf(author)} votes on request ${r.id.slice(0, 8)} a second time`;
    }
    r.records.push(rec.seq);
    if (approve) {
      r.approvals.set(author, rec.seq);
      if (p.reason) r.reasons.set(author, p.reason);
      this.decide(r);
    } else {
      r.rejections.set(author, p.reason || '');
      if (r.state === 'pending' && r.policy && !reachable(r.policy, r.groups, this.counted(r), this.undecided(r), r.submitter)) r.closing = 'rejected';
    }
    return '';
  }

  // approvers checks the approvers and assignment a gateway record
  // states for r: each a signer who approved r and counts, at least M,
  // the slots filled validly. It returns what is wrong, or ''.
  checkApprovers(r, list, assignment) {
    if (!r.policy) return '';
    const seen = new Set();
    for (const a of list || []) {
      if (seen.has(a)) return `approver ${a.slice(0, 8)} is listed twice for request ${r.id.slice(0, 8)}`;
      seen.add(a);
      if (!r.approvals.has(a) || !r.signers.includes(a)) return `approver ${this.nameOf(a)} of request ${r.id.slice(0, 8)} has no valid approval of it in the log`;
      if (r.policy.submitter_counts === false && a === r.submitter) return `approver ${this.nameOf(a)} submitted request ${r.id.slice(0, 8)}, and its rule does not count the submitter`;
    }
    if (seen.size < r.policy.required_approvals) return `request ${r.id.slice(0, 8)} lists ${seen.size} approvers; it needs ${describePolicy(r.policy)}`;
    const bad = checkAssignment(r.policy, r.groups, [...seen], assignment);
    return bad ? `the assignment stated for request ${r.id.slice(0, 8)} is not valid: ${bad} (${describePolicy(r.policy)})` : '';
  }

  approved(rec, v) {
    const p = v.payload;
    const r = this.requests.get(p.request_id);
    if (!r) return '';
    if (r.policy) {
      if (r.state !== 'approved' || r.approvedSeq) return `request ${r.id.slice(0, 8)} is ${r.state}; only the vote that meets a cool-off rule's requirement leads to gate.approved, once`;
      const bad = this.checkApprovers(r, p.approvers, p.assignment);
      if (bad) return bad;
      const want = Date.parse(rec.received_at) + r.policy.delay_seconds * 1000;
      if (Date.parse(p.executable_at) !== want) return `executable_at ${p.executable_at} is not the record's time ${rec.received_at} plus the rule's ${r.policy.delay_seconds} s cool-off`;
    }
    r.records.push(rec.seq);
    r.state = 'approved';
    r.approvedSeq = rec.seq;
    r.executableAt = p.executable_at;
    r.approvers = (p.approvers || []).slice();
    r.assignment = p.assignment || null;
    if (p.required_approvals) r.m = p.required_approvals;
    return '';
  }

  ran(rec, v) {
    const p = v.payload;
    const r = this.requests.get(p.request_id);
    if (!r) return '';
    if (r.state === 'executed' || r.state === 'failed') return `request ${r.id.slice(0, 8)} already ended (${r.state}): it would have executed twice`;
    if (r.state === 'approved') {
      if (!r.approvedSeq) return `request ${r.id.slice(0, 8)} met its requirement but has no gate.approved before its execution`;
      if (Date.parse(rec.received_at) < Date.parse(r.executableAt)) return `request ${r.id.slice(0, 8)} executed at ${rec.received_at}, before its cool-off ended at ${r.executableAt}`;
    } else if (r.policy && r.state === 'pending') {
      return `request ${r.id.slice(0, 8)} reached execution with ${this.counted(r).length} counted approvals; it needs ${describePolicy(r.policy)}`;
    } else if (SETTLED.has(r.state)) {
      return `request ${r.id.slice(0, 8)} was already ${r.state}`;
    }
    if (v.kind === 'gate.executed' || (p.approvers && p.approvers.length)) {
      const bad = this.checkApprovers(r, p.approvers, p.assignment);
      if (bad) return bad;
      if (r.approvedSeq && r.policy && (!sameSet(p.approvers, r.approvers) || !sameAssignment(p.assignment, r.assignment))) {
        return `it lists approvers or an assignment for request ${r.id.slice(0, 8)} other than its gate.approved (record ${r.approvedSeq}) fixed`;
      }
    }
    r.records.push(rec.seq);
    if (v.kind === 'gate.executed') {
      r.state = 'executed';
      r.executed = p;
    } else {
      r.state = 'failed';
      r.closed = p;
      r.closedKind = v.kind;
    }
    if (p.required_approvals) r.m = p.required_approvals;
    return '';
  }

  closed(rec, v) {
    const p = v.payload;
    const r = this.requests.get(p.request_id);
    if (!r) return '';
    if (v.kind === 'gate.expired' && r.state === 'approved') return `request ${r.id.slice(0, 8)} is approved, in its cool-off: expires_at no longer applies to it`;
    if (v.kind === 'gate.rejected' && r.policy && (r.state === 'pending' || r.state === 'approved') && r.closing !== p.reason) {
      return `request ${r.id.slice(0, 8)} is rejected (${p.reason}), but its votes (${r.rejections.size} rejections of ${r.signers.length} signers, ${r.vetoes.size} vetoes; ${describePolicy(r.policy)}) leave it standing`;
    }
    if (v.kind === 'gate.cancelled' && SETTLED.has(r.state)) return `request ${r.id.slice(0, 8)} is cancelled while already ${r.state}`;
    r.records.push(rec.seq);
    r.state = v.kind.slice('gate.'.length);
    r.closed = p;
    r.closedKind = v.kind;
    if (p.required_approvals) r.m = p.required_approvals;
    return '';
  }

  // needed is who must approve a proposal: every signer, or, for a
  // removal alone, every signer but those removed (PROTOCOL 5).
  needed(p) {
    const onlyRemove = !(p.add && p.add.length) && !p.required_approvals && !p.rules && !p.groups;
    const removed = new Set(p.remove || []);
    return this.gate.signers.filter(s => !onlyRemove || !removed.has(s));
  }

  // waitingFor lists the open requests and proposals key has not voted on
  // and may vote on.
  waitingFor(key, now = Date.now()) {
    const out = [];
    if (!this.isSigner(key)) return out;
    for (const r of this.requests.values()) {
      if (r.state !== 'pending' || new Date(r.payload.expires_at).getTime() <= now) continue;
      if (r.approvals.has(key) || r.rejections.has(key)) continue;
      if (key === r.submitter && r.policy && r.policy.submitter_counts === false) continue;
      out.push({ type: 'request', conv: this, item: r, expires: r.payload.expires_at });
    }
    for (const pr of this.proposals.values()) {
      if (pr.open && pr.needed.includes(key) && !pr.approvals.has(key)) out.push({ type: 'proposal', conv: this, item: pr, expires: '' });
    }
    return out;
  }
}

function sameSet(a, b) {
  const x = [...new Set(a || [])].sort();
  const y = [...new Set(b || [])].sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}

function sameAssignment(a, b) {
  const x = Object.entries(a || {}).sort();
  const y = Object.entries(b || {}).sort();
  return x.length === y.length && x.every(([k, g], i) => k === y[i][0] && g === y[i][1]);
}

const ruleKey = r => `${r.service} ${r.method} ${r.endpoint}`;
const ruleWhat = r => (plainRule(r) ? String(r.required_approvals) : describePolicy(policyOf(r.required_approvals, r)));

// ruleDiff is what changes from one rule set to another: rules removed,
// added, or whose M or policy changes.
export function ruleDiff(beforeRules, afterRules) {
  const before = new Map(beforeRules.map(r => [ruleKey(r), ruleWhat(r)]));
  const next = new Map(afterRules.map(r => [ruleKey(r), ruleWhat(r)]));
  const rules = [];
  for (const [k, m] of before) if (!next.has(k)) rules.push({ rule: k, from: m, to: null });
  for (const [k, m] of next) if (!before.has(k) || before.get(k) !== m) rules.push({ rule: k, from: before.has(k) ? before.get(k) : null, to: m });
  return rules;
}

// groupDiff is what changes from one set of groups to another, each
// group with the keys in and out of it.
export function groupDiff(before, after) {
  const out = [];
  for (const g of [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].sort()) {
    const b = (before || {})[g];
    const a = (after || {})[g];
    if (!a) { out.push({ group: g, dropped: true, added: [], removed: b.slice() }); continue; }
    const added = a.filter(k => !(b || []).includes(k));
    const removed = (b || []).filter(k => !a.includes(k));
    if (!b || added.length || removed.length) out.push({ group: g, set: !b, added, removed });
  }
  return out;
}

// changeOf says what a member.changed changes in c's state before it:
// members in and out, the threshold, rules added, removed or re-weighted,
// groups. Its label names what changed, so that a rule change is not read
// as a change of members.
export function changeOf(c, p) {
  const after = new Map((p.members || []).map(m => [m.key, m.name]));
  const added = [...after].filter(([k]) => !c.members.has(k)).map(([key, name]) => ({ key, name }));
  const removed = [...c.members].filter(([k]) => !after.has(k)).map(([key, name]) => ({ key, name }));
  const rules = ruleDiff(c.gate.rules, p.rules || []);
  const groups = p.groups ? groupDiff(c.gate.groups, p.groups) : [];
  const threshold = c.gate.m !== p.required_approvals ? { from: c.gate.m, to: p.required_approvals } : null;
  const what = [];
  if (added.length || removed.length) what.push('members');
  if (threshold) what.push('threshold');
  if (rules.length) what.push('rules');
  if (groups.length) what.push('groups');
  return { added, removed, rules, groups, threshold, label: (what.length ? what.join(' and ') : 'nothing') + ' changed' };
}

// ---- policies (PROTOCOL 9): the same decisions as gate/policy.go ----------

// policyOf is a rule's requirement with its defaults filled in (Go's
// PolicyOf): M and the defaults where no rule applies.
export function policyOf(m, rule) {
  if (!rule) return { required_approvals: m, require: [], submitter_counts: true, reason_required: false, delay_seconds: 0, veto: 0 };
  const delay = Number(rule.delay_seconds) || 0;
  return {
    required_approvals: rule.required_approvals,
    require: (rule.require || []).map(q => ({ group: q.group, approvals: q.approvals })),
    submitter_counts: rule.submitter_counts !== false,
    reason_required: rule.reason_required === true,
    delay_seconds: delay,
    veto: rule.veto ? rule.veto : delay > 0 ? 1 : 0,
  };
}

// normPolicy reads a policy as the state object gives it.
export function normPolicy(p) {
  if (!p) return null;
  return { ...policyOf(p.required_approvals, p), required_approvals: p.required_approvals };
}

// plain says the policy says no more than M.
export function plainPolicy(p) {
  return !p || (!(p.require || []).length && p.submitter_counts !== false && !p.reason_required && !p.delay_seconds);
}
export function plainRule(r) { return plainPolicy(policyOf(r.required_approvals, r)); }

const countText = (n, one, many) => n === 1 ? `1 ${one}` : `${n} ${many}`;
function andList(parts, conj) {
  if (parts.length <= 1) return parts.join('');
  return parts.slice(0, -1).join(', ') + ` ${conj} ` + parts[parts.length - 1];
}
export const slotsText = req => andList(req.map(q => `${q.approvals} of ${q.group}`), 'and');

// durationText is a delay in the largest unit that divides it (Go's).
export function durationText(sec) {
  if (sec % 86400 === 0) return countText(sec / 86400, 'day', 'days');
  if (sec % 3600 === 0) return `${sec / 3600} h`;
  if (sec % 60 === 0) return `${sec / 60} min`;
  return `${sec} s`;
}

// describePolicy is Go's Policy.Describe: "3 approvals, including 1 of
// finance and 1 of security; not the submitter; reason required; 15 min
// cool-off, 1 veto".
export function describePolicy(p) {
  let s = countText(p.required_approvals, 'approval', 'approvals');
  if ((p.require || []).length) s += ', including ' + slotsText(p.require);
  if (p.submitter_counts === false) s += '; not the submitter';
  if (p.reason_required) s += '; reason required';
  if (p.delay_seconds > 0) s += `; ${durationText(p.delay_seconds)} cool-off, ${countText(p.veto, 'veto', 'vetoes')}`;
  return s;
}

// ruleText is a rule as Go's Rule.String shows it, with → for ->.
export function ruleText(r) {
  const head = `${r.service} ${r.method} ${r.endpoint} → `;
  return head + (plainRule(r) ? String(r.required_approvals) : describePolicy(policyOf(r.required_approvals, r)));
}

function counted(p, approvers, submitter) {
  return [...new Set(approvers.filter(k => p.submitter_counts !== false || k !== submitter))].sort();
}

// match decides whether approvers meet p (Go's Match): at least M counted
// keys, and every require slot filled by a distinct key of its group,
// found by augmenting paths over slots ordered by group name and keys by
// id, so the assignment depends only on the sets. It returns the
// assignment (key -> group; {} without slots), or null.
export function match(p, groups, approvers, submitter) {
  const keys = counted(p, approvers, submitter);
  if (keys.length < p.required_approvals) return null;
  const req = (p.require || []).filter(q => q.approvals > 0);
  const total = req.reduce((n, q) => n + q.approvals, 0);
  if (total > keys.length) return null;
  const order = req.slice().sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0));
  const slots = [];
  const adj = [];
  for (const q of order) {
    const members = new Set((groups || {})[q.group] || []);
    const a = keys.map((k, i) => (members.has(k) ? i : -1)).filter(i => i >= 0);
    for (let i = 0; i < q.approvals; i++) { slots.push(q.group); adj.push(a); }
  }
  const keyOf = slots.map(() => -1);
  const slotOf = keys.map(() => -1);
  let seen;
  const augment = s => {
    for (const k of adj[s]) {
      if (seen[k]) continue;
      seen[k] = true;
      if (slotOf[k] < 0 || augment(slotOf[k])) { slotOf[k] = s; keyOf[s] = k; return true; }
    }
    return false;
  };
  for (let s = 0; s < slots.length; s++) {
    seen = keys.map(() => false);
    if (!augment(s)) return null;
  }
  const out = {};
  keyOf.forEach((k, s) => { out[keys[k]] = slots[s]; });
  return out;
}

// reachable says whether the counted approvers and the undecided signers
// together could still meet p (Go's Reachable).
export function reachable(p, groups, approvers, undecided, submitter) {
  return match(p, groups, [...approvers, ...undecided], submitter) !== null;
}

// checkAssignment checks an assignment a gateway record states (Go's
// CheckAssignment); it returns what is wrong, or ''.
export function checkAssignment(p, groups, approvers, assignment) {
  const a = assignment || {};
  const keys = Object.keys(a).sort();
  if (!(p.require || []).length) return keys.length ? 'it assigns keys to slots, but the rule has no require' : '';
  const filled = {};
  for (const k of keys) {
    const g = a[k];
    if (!approvers.includes(k)) return `it assigns ${k.slice(0, 8)}, who is not a counted approver, to group ${g}`;
    if (!((groups || {})[g] || []).includes(k)) return `it assigns ${k.slice(0, 8)} to group ${g}, which does not hold that key`;
    filled[g] = (filled[g] || 0) + 1;
  }
  for (const q of p.require) {
    if ((filled[q.group] || 0) !== q.approvals) return `it fills ${filled[q.group] || 0} of group ${q.group}'s ${q.approvals} slots`;
    delete filled[q.group];
  }
  const extra = Object.keys(filled);
  return extra.length ? `it assigns keys to group ${extra[0]}, which the rule does not require` : '';
}

// ---- which rule applies (PROTOCOL 6; Go's Threshold) ----------------------

// matchPath is Go's MatchPath: each segment cut at its first ';', a
// trailing '/' dropped but for the root.
function matchPath(p) {
  if (p.includes(';')) p = p.split('/').map(s => (s.includes(';') ? s.slice(0, s.indexOf(';')) : s)).join('/');
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

// matchEndpoint is templates.MatchEndpoint: a placeholder matches one or
// more characters other than '/'.
function matchEndpoint(pattern, path) {
  if ((pattern.match(/\//g) || []).length !== (path.match(/\//g) || []).length) return false;
  const re = '^' + pattern.split(/(\{[^}]*\})/).map(s => (s.startsWith('{') && s.endsWith('}') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('') + '$';
  try { return new RegExp(re).test(path); } catch { return false; }
}

const sameSM = (r, t) => (r.service === '*' || r.service === t.service) && (r.method === '*' || r.method.toUpperCase() === String(t.method).toUpperCase());
const matches = (r, t) => sameSM(r, t) && (r.endpoint === '*' || r.endpoint === t.path || (!!t.pattern && r.endpoint === t.pattern));
function covers(r, t) {
  if (!sameSM(r, t)) return false;
  if (r.endpoint === '*' || matches(r, t)) return true;
  const path = matchPath(t.path);
  return r.endpoint.includes('{') ? matchEndpoint(matchPath(r.endpoint), path) : matchPath(r.endpoint) === path;
}
const score = r => (r.service !== '*' ? 4 : 0) + (r.endpoint !== '*' ? 2 : 0) + (r.method !== '*' ? 1 : 0);
function selectBy(rules, t, applies) {
  let best = null;
  for (const r of rules) {
    if (!applies(r, t)) continue;
    if (!best || score(r) > score(best) || (score(r) === score(best) && r.required_approvals > best.required_approvals)) best = r;
  }
  return best;
}

// threshold is M for target t and the rule that set it (null for def).
export function threshold(def, rules, t) {
  let rule = selectBy(rules, t, matches);
  let m = rule ? rule.required_approvals : def;
  const w = selectBy(rules, t, covers);
  if (w && w.required_approvals > m) { m = w.required_approvals; rule = w; }
  return { m, rule };
}

// targetOf is what the rules are matched on for request payload p, with
// the catalog's services and templates: the service, the path of its URL
// below the service's base URL, the template's pattern and the method; or
// null when the catalog does not know the service.
export function targetOf(catalog, p) {
  const svc = catalog && (catalog.services || []).find(s => s.name === p.service);
  if (!svc || !svc.base_url) return null;
  let u, b;
  try { u = new URL(p.url); b = new URL(svc.base_url); } catch { return null; }
  const bp = b.pathname.replace(/\/$/, '');
  let path = u.pathname;
  if (bp && !(path === bp || path.startsWith(bp + '/'))) return null;
  path = path.slice(bp.length) || '/';
  let pattern = '';
  if (p.template) {
    const tpl = (catalog.templates || []).find(x => x.name === p.template);
    if (!tpl) return null;
    pattern = tpl.endpoint || '';
  }
  return { service: p.service, path, pattern, method: p.method };
}

export function codePoints(s) { return [...String(s)].length; }
