// dom.js: building the page from data. Every text that comes from someone
// else goes in through textContent (h's string children), never innerHTML.

// h makes an element. attrs: class, id, for, type, ... ; "on:click" adds a
// listener; "aria-*"/"data-*" are attributes; a false/null value is left
// out. Children: strings (as text), nodes, arrays of them, null.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on:')) el.addEventListener(k.slice(3), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'required') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and fills it with children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// field is a labelled control: the label names it for screen readers.
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

// shortKey is a key id's first 8 characters, as the CLI shows it.
export function shortKey(k) { return k ? k.slice(0, 8) : '?'; }

// when shows a time in the viewer's zone, the UTC value on hover.
export function when(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return h('span', {}, iso || '');
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

// countdown says how long until iso, or how long ago it passed.
export function countdown(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  const s = Math.round(Math.abs(ms) / 1000);
  const txt = s >= 86400 ? `${Math.floor(s / 86400)}d ${Math.floor(s % 86400 / 3600)}h`
    : s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor(s % 3600 / 60)}m`
      : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
  return ms >= 0 ? `expires in ${txt}` : `expired ${txt} ago`;
}

// coolOff says how long until an approved request executes.
export function coolOff(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  if (ms <= 0) return 'cool-off over: executing';
  const s = Math.ceil(ms / 1000);
  const txt = s >= 86400 ? `${Math.floor(s / 86400)}d ${Math.floor(s % 86400 / 3600)}h`
    : s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor(s % 3600 / 60)}m`
      : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
  return `executes in ${txt}`;
}
