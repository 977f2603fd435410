// Cairn's dashboard: plain JavaScript, no build step, every asset served by the binary.
// The API key lives in sessionStorage (this tab only) and is sent as a bearer token to the
// same origin; every page is built with DOM nodes and textContent, never HTML strings, so
// data from the API cannot inject markup (the server's CSP allows no inline script either).
'use strict';

const Cairn = (() => {
  const KEY = 'cairn.key';
  const NAV = ['overview', 'traces', 'usage', 'jobs', 'knowledge', 'runs', 'evals'];
  const pages = {};
  let me = null;

  /** An element: h('a', {href: '#/x', onclick: f}, 'text', child, [more]). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** Calls the API with the stored key; throws an Error carrying the server's message. */
  async function api(method, path, body) {
    const opts = { method, headers: { authorization: 'Bearer ' + (sessionStorage.getItem(KEY) || '') } };
    if (body !== undefined) {
      opts.headers['content-type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (r.status === 401) {
      // A key that worked was revoked: back to the login page. A key being tried: say so there.
      if (me) logout();
      throw new Error('The key was refused: check it, or log in again.');
    }
    if (!r.ok) {
      const err = new Error((data && data.error && data.error.message) || ('HTTP ' + r.status));
      err.status = r.status;
      throw err;
    }
    return data;
  }

  const get = (path) => api('GET', path);
  const post = (path, body) => api('POST', path, body === undefined ? {} : body);

  /** A query string from an object, leaving out empty values. */
  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  const fmt = {
    int: (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US')),
    usd: (n) => (n === null || n === undefined ? '–' : '$' + Number(n).toFixed(Math.abs(n) < 1 ? 4 : 2)),
    ms: (n) => (n === null || n === undefined ? '–' : n >= 1000 ? (n / 1000).toFixed(2) + ' s' : Number(n).toFixed(1) + ' ms'),
    pct: (n) => (n === null || n === undefined ? '–' : (n * 100).toFixed(1) + '%'),
    time: (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '–'),
  };

  /** A table: columns are [title, row => cell] pairs; `attrs(row)` adds row attributes. */
  function table(columns, rows, attrs) {
    return h('table', {},
      h('thead', {}, h('tr', {}, columns.map(([t]) => h('th', {}, t)))),
      h('tbody', {}, rows.length
        ? rows.map((r) => h('tr', attrs ? attrs(r) : {}, columns.map(([, f]) => h('td', {}, f(r)))))
        : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, 'Nothing here.'))));
  }

  function error(e) {
    return h('p', { class: 'error', 'data-test': 'error' }, e.message || String(e));
  }

  /** Registers page `name`: `render(arg, query)` returns a node (or a promise of one). */
  function page(name, title, render) {
    pages[name] = { title, render };
  }

  function logout() {
    sessionStorage.removeItem(KEY);
    me = null;
    if (location.hash !== '#/login') location.hash = '#/login';
    else route();
  }

  function header() {
    const top = document.getElementById('top');
    top.replaceChildren();
    if (!me) {
      top.append(h('span', { class: 'brand' }, 'Cairn'));
      return;
    }
    const current = (location.hash.slice(2).split(/[/?]/)[0]) || 'overview';
    top.append(
      h('span', { class: 'brand' }, 'Cairn'),
      h('nav', {}, NAV.filter((name) => pages[name]).map((name) =>
        h('a', { href: '#/' + name, class: name === current ? 'active' : null, 'data-test': 'nav-' + name }, pages[name].title))),
      h('span', { class: 'who', 'data-test': 'who' }, me.tenant_id + ' · ' + me.role),
      h('button', { class: 'link', 'data-test': 'logout', onclick: logout }, 'Log out'));
  }

  function loginPage() {
    const input = h('input', { type: 'password', id: 'key', autocomplete: 'off', placeholder: 'sk-cairn-…', 'data-test': 'key' });
    const status = h('p', { class: 'muted' }, 'Your data stays on this server; the key is kept in this tab only.');
    const form = h('form', {
      class: 'card login',
      onsubmit: async (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        try {
          me = await get('/v1/me');
          location.hash = '#/overview';
        } catch (e) {
          sessionStorage.removeItem(KEY);
          status.replaceChildren(error(e));
        }
      },
    }, h('h1', {}, 'Log in'), h('label', { for: 'key' }, 'API key'), input,
      h('button', { type: 'submit', 'data-test': 'login' }, 'Log in'), status);
    return form;
  }

  async function route() {
    const main = document.getElementById('main');
    const hash = location.hash.slice(2);
    const [path, query] = hash.split('?');
    const [name, ...rest] = path.split('/');
    if (!sessionStorage.getItem(KEY) || name === 'login') {
      me = null;
      header();
      main.replaceChildren(loginPage());
      return;
    }
    if (!me) {
      try { me = await get('/v1/me'); } catch (e) { main.replaceChildren(error(e)); return; }
    }
    const p = pages[name] || pages.overview;
    header();
    main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const node = await p.render(rest.map(decodeURIComponent).join('/'), new URLSearchParams(query || ''));
      main.replaceChildren(node);
    } catch (e) {
      main.replaceChildren(h('h1', {}, p.title), error(e));
    }
  }

  window.addEventListener('hashchange', route);
  window.addEventListener('DOMContentLoaded', route);
  return { h, api, get, post, qs, fmt, table, error, page, me: () => me, route };
})();
