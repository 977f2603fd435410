// Operating pages: jobs and dead letters (retry one or all), collections and their documents
// (failed ingestions first), and agent runs waiting for a person (approve or reject).
'use strict';

(() => {
  const { h, get, post, qs, fmt, table, page, error } = Cairn;
  const JOB_STATES = ['dead', 'queued', 'running', 'succeeded', 'cancelled'];

  /** A button that runs `action`, then reloads the page (or shows the error beside it). */
  function act(label, test, action) {
    const out = h('span', {});
    const b = h('button', {
      'data-test': test,
      onclick: async () => {
        b.disabled = true;
        try { await action(); Cairn.route(); } catch (e) { b.disabled = false; out.replaceChildren(error(e)); }
      },
    }, label);
    return h('span', {}, b, out);
  }

  page('jobs', 'Jobs', async (_, q) => {
    const st = JOB_STATES.includes(q.get('state')) ? q.get('state') : 'dead';
    const page_ = await get('/v1/jobs' + qs({ state: st, limit: 100, cursor: q.get('cursor') || '' }));
    return h('section', {},
      h('h1', {}, st === 'dead' ? 'Dead letters' : 'Jobs'),
      h('div', { class: 'tabs' }, JOB_STATES.map((s) =>
        h('a', { href: '#/jobs?state=' + s, class: s === st ? 'active' : null }, s))),
      st === 'dead' && page_.data.length
        ? act('Retry all dead jobs', 'retry-all', () => post('/v1/jobs/dead/retry', {})) : null,
      table([
        ['Job', (j) => j.id], ['Type', (j) => j.kind], ['State', (j) => h('span', { class: 'badge ' + j.state }, j.state)],
        ['Attempts', (j) => `${j.attempts} / ${j.max_attempts}`], ['Updated', (j) => fmt.time(j.updated_at_ms)],
        ['Last error', (j) => j.last_error || ''],
        ['', (j) => (j.state === 'dead' ? act('Retry', 'retry', () => post('/v1/jobs/' + encodeURIComponent(j.id) + '/retry')) : '')],
      ], page_.data, (j) => ({ 'data-test': 'job-row', 'data-job': j.id })),
      page_.next_cursor ? h('a', { href: '#/jobs' + qs({ state: st, cursor: page_.next_cursor }) }, 'More →') : null);
  });

  page('knowledge', 'Knowledge', async (id, q) => {
    if (!id) {
      const cols = await get('/v1/collections');
      return h('section', {},
        h('h1', {}, 'Collections'),
        table([
          ['Name', (c) => h('a', { href: '#/knowledge/' + encodeURIComponent(c.id) }, c.name)], ['Id', (c) => c.id],
          ['Embedding model', (c) => c.embedding_model], ['Created', (c) => fmt.time(c.created_at_ms)],
        ], cols.data, () => ({ 'data-test': 'collection-row' })));
    }
    const col = await get('/v1/collections/' + encodeURIComponent(id));
    const state = ['failed', 'pending', 'ready'].includes(q.get('state')) ? q.get('state') : '';
    const docs = await get('/v1/collections/' + encodeURIComponent(id) + '/documents' +
      qs({ state, limit: 200, cursor: q.get('cursor') || '' }));
    const failed = state === 'failed' ? docs : await get('/v1/collections/' + encodeURIComponent(id) + '/documents' + qs({ state: 'failed', limit: 1 }));
    return h('section', {},
      h('h1', {}, col.name),
      h('p', { class: 'muted' }, col.id + ' · ' + col.embedding_model),
      failed.data.length ? h('p', { class: 'error', 'data-test': 'failed-note' }, 'Some ingestions failed: ',
        h('a', { href: '#/knowledge/' + encodeURIComponent(id) + '?state=failed' }, 'show them')) : null,
      h('div', { class: 'tabs' }, ['', 'failed', 'pending', 'ready'].map((s) =>
        h('a', { href: '#/knowledge/' + encodeURIComponent(id) + (s ? '?state=' + s : ''), class: s === state ? 'active' : null }, s || 'all'))),
      table([
        ['Document', (d) => d.id], ['Title', (d) => d.title], ['State', (d) => h('span', { class: 'badge ' + d.state }, d.state)],
        ['Chunks', (d) => d.chunk_count], ['Version', (d) => d.version], ['Updated', (d) => fmt.time(d.updated_at_ms)],
        ['Error', (d) => d.error || ''],
      ], docs.data, (d) => ({ 'data-test': 'document-row', 'data-state': d.state })),
      docs.next_cursor ? h('a', { href: '#/knowledge/' + encodeURIComponent(id) + qs({ state, cursor: docs.next_cursor }) }, 'More →') : null);
  });

  function decide(run, action, decision) {
    const answer = { call_id: action.call_id, decision };
    if (decision === 'reject') answer.message = 'Rejected from the dashboard.';
    return post('/v1/runs/' + encodeURIComponent(run.id) + '/approvals', { answers: [answer] });
  }

  page('runs', 'Runs', async (_, q) => {
    const all = q.get('state') === 'all';
    const runs = await get('/v1/runs' + qs({ state: all ? '' : 'requires_action', limit: 100 }));
    return h('section', {},
      h('h1', {}, all ? 'Agent runs' : 'Runs waiting for a person'),
      h('div', { class: 'tabs' },
        h('a', { href: '#/runs', class: all ? null : 'active' }, 'waiting'),
        h('a', { href: '#/runs?state=all', class: all ? 'active' : null }, 'all')),
      runs.data.length ? null : h('p', { class: 'muted', 'data-test': 'no-runs' }, 'No runs.'),
      runs.data.map((r) => h('div', { class: 'card run', 'data-test': 'run', 'data-run': r.id },
        h('h3', {}, r.id, ' ', h('span', { class: 'badge ' + r.state }, r.state)),
        h('p', { class: 'muted' }, `agent ${r.agent_id} v${r.agent_version} · ${r.steps} steps · ` +
          `${fmt.usd(r.usage.cost_usd)} · ${fmt.time(r.created_at_ms)} · `,
          h('a', { href: '#/traces?run_id=' + encodeURIComponent(r.id) }, 'traces')),
        r.answer ? h('p', {}, r.answer) : null,
        r.reason ? h('p', { class: 'error' }, r.reason) : null,
        r.pending.map((a) => h('div', { class: 'pending', 'data-test': 'pending' },
          h('p', {}, h('strong', {}, a.tool), ' · ', a.reason),
          h('pre', {}, a.arguments),
          a.kind === 'approval' ? h('div', { class: 'row' },
            act('Approve', 'approve', () => decide(r, a, 'approve')),
            act('Reject', 'reject', () => decide(r, a, 'reject'))) : h('p', { class: 'muted' }, 'Waiting for the client tool output.'))))));
  });
})();
