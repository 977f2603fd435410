// Traces: a filterable list, and one trace as a waterfall; a span's details show its prompt
// and response (when captured), retrieved chunks, tool calls and errors; feedback is read
// and given from the trace.
'use strict';

(() => {
  const { h, get, post, qs, fmt, table, page, error } = Cairn;
  const FILTERS = [
    ['model', 'Model'], ['key_id', 'Key'], ['status', 'Status'], ['min_latency_ms', 'Min latency (ms)'],
    ['min_cost_usd', 'Min cost ($)'], ['session_id', 'Session'], ['user', 'End user'], ['run_id', 'Run'],
  ];

  page('traces', 'Traces', async (_, q) => {
    const params = {};
    for (const [k] of FILTERS) params[k] = q.get(k) || '';
    params.after = q.get('after') || '';
    const list = await get('/v1/traces' + qs({ ...params, limit: 50 }));
    const inputs = FILTERS.map(([k, label]) => k === 'status'
      ? h('label', {}, label, h('select', { name: k }, ['', 'ok', 'error'].map((v) =>
        h('option', { value: v, selected: v === params[k] }, v || 'any'))))
      : h('label', {}, label, h('input', { name: k, value: params[k], size: 12 })));
    const form = h('form', {
      class: 'filters',
      onsubmit: (ev) => {
        ev.preventDefault();
        const f = {};
        for (const el of form.elements) if (el.name) f[el.name] = el.value.trim();
        location.hash = '#/traces' + qs(f);
      },
    }, inputs, h('button', { type: 'submit', 'data-test': 'filter' }, 'Filter'));
    const more = list.next
      ? h('a', { href: '#/traces' + qs({ ...params, after: list.next }), 'data-test': 'next' }, 'Older traces →') : null;
    return h('section', {},
      h('h1', {}, 'Traces'), form,
      table([
        ['Started', (t) => h('a', { href: '#/trace/' + t.trace_id }, fmt.time(t.start_ms))],
        ['Name', (t) => t.name], ['Model', (t) => t.model || '–'],
        ['Status', (t) => h('span', { class: 'badge ' + t.status }, t.status)],
        ['Duration', (t) => fmt.ms(t.duration_ms)], ['Spans', (t) => t.span_count],
        ['Tokens', (t) => fmt.int(t.input_tokens + t.output_tokens)], ['Cost', (t) => fmt.usd(t.cost_usd)],
        ['Key', (t) => t.key_id || '–'], ['User', (t) => t.user || t.session_id || '–'],
      ], list.data, (t) => ({ 'data-test': 'trace-row', 'data-trace': t.trace_id })),
      more);
  });

  /** Spans depth first with their depth. */
  function flatten(nodes, depth, out) {
    for (const n of nodes) {
      out.push([n, depth]);
      flatten(n.children || [], depth + 1, out);
    }
    return out;
  }

  const CONTENT = {
    'gen_ai.input.messages': 'Prompt', 'gen_ai.output.messages': 'Response', 'cairn.search.texts': 'Retrieved text',
    'cairn.search.chunks': 'Retrieved chunks', 'cairn.rag.citations': 'Citations', 'cairn.tool.result': 'Tool result',
    'gen_ai.tool.name': 'Tool', 'error.type': 'Error type',
  };

  function details(span) {
    const a = span.attributes || {};
    const shown = Object.keys(CONTENT).filter((k) => a[k] !== undefined);
    return h('div', { class: 'card details', 'data-test': 'span-details' },
      h('h3', {}, span.name),
      h('p', { class: 'muted' }, `${span.kind} · ${span.status} · ${fmt.ms((span.end_ns - span.start_ns) / 1e6)}`),
      span.status_message ? h('p', { class: 'error' }, span.status_message) : null,
      shown.map((k) => h('div', { class: 'content' }, h('h4', {}, CONTENT[k]), h('pre', {}, String(a[k])))),
      h('table', { class: 'attrs' }, h('tbody', {}, Object.entries(a).filter(([k]) => !CONTENT[k] || k === 'gen_ai.tool.name')
        .map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, String(v)))))));
  }

  function feedbackBox(id, items) {
    const status = h('span', { class: 'muted' });
    const comment = h('input', { placeholder: 'Comment (optional)', size: 40, 'data-test': 'feedback-comment' });
    const send = async (score) => {
      try {
        await post('/v1/traces/' + id + '/feedback', { name: 'helpful', score, comment: comment.value || null });
        Cairn.route();
      } catch (e) { status.replaceChildren(error(e)); }
    };
    return h('div', { class: 'card' },
      h('h3', {}, 'Feedback'),
      table([
        ['When', (f) => fmt.time(f.created_ms)], ['On', (f) => f.target], ['Name', (f) => f.name],
        ['Score', (f) => String(f.score)], ['Comment', (f) => f.comment || ''], ['By', (f) => f.author || f.key_id],
      ], items, () => ({ 'data-test': 'feedback-row' })),
      h('div', { class: 'row' }, comment,
        h('button', { onclick: () => send(true), 'data-test': 'thumbs-up' }, 'Helpful'),
        h('button', { onclick: () => send(false), 'data-test': 'thumbs-down' }, 'Not helpful'), status));
  }

  page('trace', 'Trace', async (id) => {
    const t = await get('/v1/traces/' + encodeURIComponent(id));
    const s = t.trace;
    const spans = flatten(t.spans, 0, []);
    const start = Math.min(...spans.map(([n]) => n.start_ns));
    const end = Math.max(...spans.map(([n]) => n.end_ns));
    const total = Math.max(end - start, 1);
    const panel = h('div', {}, spans.length ? details(spans[0][0]) : null);
    const rows = spans.map(([n, depth]) => {
      const bar = h('div', { class: 'bar ' + n.status });
      bar.style.left = ((n.start_ns - start) / total) * 100 + '%';
      bar.style.width = Math.max(((n.end_ns - n.start_ns) / total) * 100, 0.3) + '%';
      const label = h('div', { class: 'name' }, n.name);
      label.style.paddingLeft = depth * 14 + 'px';
      return h('div', {
        class: 'span', 'data-test': 'span-row', 'data-span': n.span_id, tabindex: 0,
        onclick: () => panel.replaceChildren(details(n)),
      }, label, h('div', { class: 'track' }, bar), h('div', { class: 'dur' }, fmt.ms((n.end_ns - n.start_ns) / 1e6)));
    });
    return h('section', {},
      h('h1', {}, s.name),
      h('p', { class: 'muted', 'data-test': 'trace-summary' },
        `${s.trace_id} · ${fmt.time(s.start_ms)} · ${fmt.ms(s.duration_ms)} · ${s.span_count} spans · ` +
        `${fmt.int(s.input_tokens + s.output_tokens)} tokens · ${fmt.usd(s.cost_usd)} · ${s.status}`),
      h('div', { class: 'waterfall', 'data-test': 'waterfall' }, rows),
      panel,
      feedbackBox(s.trace_id, t.feedback || []));
  });
})();
