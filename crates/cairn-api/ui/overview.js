// Overview (requests, errors, latency and time to first token by model, tokens and cost over
// time, dearest keys), usage and budgets per key, and stored answer evaluations.
'use strict';

(() => {
  const { h, get, qs, fmt, table, page } = Cairn;
  const HOUR = 3600 * 1000;
  const WINDOWS = { '24h': [24 * HOUR, 'hour'], '7d': [7 * 24 * HOUR, 'day'], '30d': [30 * 24 * HOUR, 'day'] };

  function card(label, value, test) {
    return h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', 'data-test': test }, value));
  }

  /** Bars of `value(row)` per series row, as an inline SVG. */
  function bars(series, value, label, format) {
    const w = 640, hgt = 120, max = Math.max(1e-12, ...series.map(value));
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt + 20}`);
    svg.setAttribute('class', 'chart');
    const step = w / Math.max(series.length, 1);
    series.forEach((r, i) => {
      const bh = (value(r) / max) * hgt;
      const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      rect.setAttribute('x', String(i * step + 1));
      rect.setAttribute('y', String(hgt - bh));
      rect.setAttribute('width', String(Math.min(Math.max(step - 2, 1), 48)));
      rect.setAttribute('height', String(bh));
      const tip = document.createElementNS('http://www.w3.org/2000/svg', 'title');
      tip.textContent = fmt.time(r.bucket_ms) + ': ' + format(value(r));
      rect.append(tip);
      svg.append(rect);
    });
    return h('div', { class: 'card' }, h('h3', {}, label), svg);
  }

  page('overview', 'Overview', async (_, q) => {
    const win = WINDOWS[q.get('window')] ? q.get('window') : '24h';
    const [span, bucket] = WINDOWS[win];
    const now = Date.now();
    const s = await get('/v1/traces/stats' + qs({ from_ms: now - span, to_ms: now, bucket }));
    const t = s.totals;
    const picker = h('div', { class: 'tabs' }, Object.keys(WINDOWS).map((k) =>
      h('a', { href: '#/overview?window=' + k, class: k === win ? 'active' : null }, k)));
    const perc = (p) => `${fmt.ms(p.p50)} / ${fmt.ms(p.p95)} / ${fmt.ms(p.p99)}`;
    return h('section', {},
      h('h1', {}, 'Overview'), picker,
      h('div', { class: 'cards' },
        card('Model calls', fmt.int(t.calls), 'calls'),
        card('Errors', fmt.int(t.errors), 'errors'),
        card('Latency p50 / p95 / p99', perc(t.latency_ms), 'latency'),
        card('Time to first token p50 / p95 / p99', perc(t.ttft_ms), 'ttft'),
        card('Tokens in / out', fmt.int(t.input_tokens) + ' / ' + fmt.int(t.output_tokens), 'tokens'),
        card('Cost', fmt.usd(t.cost_usd), 'cost')),
      h('div', { class: 'cards' },
        bars(s.series, (r) => r.input_tokens + r.output_tokens, 'Tokens per ' + bucket, fmt.int),
        bars(s.series, (r) => r.cost_usd, 'Cost per ' + bucket, fmt.usd)),
      h('h2', {}, 'By model'),
      table([
        ['Model', (r) => h('a', { href: '#/traces?model=' + encodeURIComponent(r.model) }, r.model)],
        ['Calls', (r) => fmt.int(r.calls)], ['Errors', (r) => fmt.int(r.errors)],
        ['Latency p50', (r) => fmt.ms(r.latency_ms.p50)], ['p95', (r) => fmt.ms(r.latency_ms.p95)],
        ['p99', (r) => fmt.ms(r.latency_ms.p99)], ['TTFT p50', (r) => fmt.ms(r.ttft_ms.p50)],
        ['p95', (r) => fmt.ms(r.ttft_ms.p95)], ['p99', (r) => fmt.ms(r.ttft_ms.p99)],
        ['Tokens', (r) => fmt.int(r.input_tokens + r.output_tokens)], ['Cost', (r) => fmt.usd(r.cost_usd)],
      ], s.by_model, () => ({ 'data-test': 'model-row' })),
      h('h2', {}, 'Top keys by cost'),
      table([
        ['Key', (r) => h('a', { href: '#/traces?key_id=' + encodeURIComponent(r.key_id) }, r.key_id)],
        ['Calls', (r) => fmt.int(r.calls)], ['Errors', (r) => fmt.int(r.errors)],
        ['Tokens', (r) => fmt.int(r.input_tokens + r.output_tokens)], ['Cost', (r) => fmt.usd(r.cost_usd)],
      ], s.by_key, () => ({ 'data-test': 'key-row' })));
  });

  page('usage', 'Usage', async () => {
    const now = new Date();
    const month = now.toISOString().slice(0, 8) + '01';
    const report = await get('/v1/usage' + qs({ from: month }));
    const byKey = new Map();
    for (const b of report.data) {
      const k = byKey.get(b.key_id) || { key_id: b.key_id, requests: 0, errors: 0, tokens: 0, cost: 0 };
      k.requests += b.requests; k.errors += b.errors; k.tokens += b.input_tokens + b.output_tokens; k.cost += b.cost_usd;
      byKey.set(b.key_id, k);
    }
    let keys = null;
    try { keys = (await get('/v1/admin/keys')).data; } catch (_) { keys = null; }
    const info = new Map((keys || []).map((k) => [k.id, k]));
    const rows = [...byKey.values()];
    for (const k of keys || []) if (!byKey.has(k.id)) rows.push({ key_id: k.id, requests: 0, errors: 0, tokens: 0, cost: 0 });
    const budget = (r) => {
      const b = info.get(r.key_id) && info.get(r.key_id).limits.monthly_budget_usd;
      if (b === null || b === undefined) return 'none';
      return h('span', {}, fmt.usd(r.cost) + ' of ' + fmt.usd(b) + ' ',
        h('meter', { min: 0, max: b, value: Math.min(r.cost, b), high: b * 0.8 }));
    };
    const limit = (r, f) => { const k = info.get(r.key_id); return k && k.limits[f] ? fmt.int(k.limits[f]) : '–'; };
    return h('section', {},
      h('h1', {}, 'Usage and budgets'),
      h('p', { class: 'muted' }, 'This month (since ' + month + ', UTC). ' +
        (keys ? '' : 'Key names, limits and budgets are shown to admin keys.')),
      table([
        ['Key', (r) => r.key_id], ['Name', (r) => (info.get(r.key_id) || {}).name || '–'],
        ['Role', (r) => (info.get(r.key_id) || {}).role || '–'], ['Requests', (r) => fmt.int(r.requests)],
        ['Errors', (r) => fmt.int(r.errors)], ['Tokens', (r) => fmt.int(r.tokens)], ['Cost', (r) => fmt.usd(r.cost)],
        ['Monthly budget', budget], ['Requests/min', (r) => limit(r, 'requests_per_minute')],
        ['Tokens/min', (r) => limit(r, 'tokens_per_minute')],
      ], rows, (r) => ({ 'data-test': 'usage-row', 'data-key': r.key_id })),
      h('p', {}, 'Totals: ', fmt.int(report.totals.requests), ' requests, ', fmt.usd(report.totals.cost_usd)));
  });

  page('evals', 'Evals', async (id) => {
    if (id) {
      const e = await get('/v1/evals/' + encodeURIComponent(id));
      return h('section', {},
        h('h1', {}, 'Evaluation ' + e.id),
        h('p', {}, `${e.questions} questions on ${e.collection_id} (dataset ${e.dataset}, judge ${e.judge || 'none'}), ${fmt.time(e.created_ms)}`),
        table([
          ['Question', (i) => i.question],
          ['Answer', (i) => (i.answer_id ? h('a', { href: '#/trace/' + i.answer_id.slice(4, 36) }, 'trace') : '–')],
          ['Cited', (i) => i.cited.join(', ')], ['Expected', (i) => i.expected.join(', ')],
          ['Precision', (i) => fmt.pct(i.citation_precision)], ['Recall', (i) => fmt.pct(i.citation_recall)],
          ['Faithfulness', (i) => fmt.pct(i.faithfulness)], ['Error', (i) => i.error || ''],
        ], e.items));
    }
    const list = await get('/v1/evals');
    return h('section', {},
      h('h1', {}, 'Answer evaluations'),
      h('p', { class: 'muted' }, 'Stored by cairn eval answers.'),
      table([
        ['When', (e) => h('a', { href: '#/evals/' + encodeURIComponent(e.id) }, fmt.time(e.created_ms))],
        ['Collection', (e) => e.collection_id], ['Dataset', (e) => e.dataset], ['Questions', (e) => e.questions],
        ['Citation precision', (e) => fmt.pct(e.citation_precision)], ['Recall', (e) => fmt.pct(e.citation_recall)],
        ['Faithfulness', (e) => fmt.pct(e.faithfulness)], ['Judge', (e) => e.judge || '–'],
      ], list.data, () => ({ 'data-test': 'eval-row' })));
  });
})();
