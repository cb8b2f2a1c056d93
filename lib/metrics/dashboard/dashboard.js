// weir's job dashboard: polls /api/v1/job once a second and draws the job
// graph, charts (hand-made SVG) and tables. No libraries, no network beyond
// the job's own endpoint.
'use strict';

const POLL_MS = 1000;
const COLORS = ['#2f6fdf', '#e07b24', '#2e9d5b', '#b54fc9', '#d64545', '#1aa3a3', '#8a6d3b',
                '#6c7a89'];
const SVG_NS = 'http://www.w3.org/2000/svg';

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;'
  })[c]);
}

function fmtNumber(v) {
  if (v === null || v === undefined || !isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
  if (a >= 10 || a === 0) return v.toFixed(0);
  return v.toFixed(a >= 1 ? 1 : 2);
}

function fmtBytes(v) {
  if (!isFinite(v)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  if (Math.abs(ms) >= 120000) return (ms / 60000).toFixed(1) + ' min';
  if (Math.abs(ms) >= 2000) return (ms / 1000).toFixed(1) + ' s';
  return ms.toFixed(ms >= 10 ? 0 : 1) + ' ms';
}

function fmtTime(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

function pct(share) { return (100 * (share || 0)).toFixed(0) + '%'; }

// ---------------------------------------------------------------------------
// The job graph: nodes in layers by their longest path from a source.

function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map();
  const depth = (n) => {
    if (layer.has(n.id)) return layer.get(n.id);
    let d = 0;
    for (const e of n.inputs) d = Math.max(d, depth(byId.get(e)) + 1);
    layer.set(n.id, d);
    return d;
  };
  nodes.forEach(depth);
  const columns = [];
  for (const n of nodes) {
    const d = layer.get(n.id);
    (columns[d] = columns[d] || []).push(n);
  }
  return columns;
}

function nodeRate(n) { return n.sink ? (n.in_rate || 0) : (n.out_rate || 0); }

function drawGraph(el, job) {
  const nodes = job.graph.nodes;
  const W = 178, H = 78, GX = 64, GY = 20, PAD = 12;
  const columns = layout(nodes);
  const pos = new Map();
  let height = 0;
  columns.forEach((col, c) => {
    col.forEach((n, r) => pos.set(n.id, {x: PAD + c * (W + GX), y: PAD + r * (H + GY)}));
    height = Math.max(height, PAD * 2 + col.length * (H + GY) - GY);
  });
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  let svg = `<svg xmlns="${SVG_NS}" viewBox="0 0 ${width} ${height}" ` +
            `style="max-width:${width}px" role="img" aria-label="job graph">` +
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" ' +
            'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#97a3b0"/>' +
            '</marker></defs>';
  for (const e of job.graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    svg += `<path class="edge" marker-end="url(#arrow)" ` +
           `d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}"/>`;
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const rate = nodeRate(n);
    const bp = n.backpressure || 0;
    const classes = ['node'];
    if (n.source) classes.push('source');
    if (n.sink) classes.push('sink');
    if (n.exchange) classes.push('exchange');
    if (bp > 0.5 || (n.exchange && (n.queue_fill_max || 0) > 0.9)) classes.push('backpressured');
    const name = n.name.length > 24 ? n.name.slice(0, 23) + '…' : n.name;
    svg += `<g class="${classes.join(' ')}" data-id="${n.id}" data-name="${esc(n.name)}" ` +
           `transform="translate(${p.x},${p.y})"><title>${esc(n.name)} (${esc(n.kind)})\n` +
           `in ${fmtNumber(n.in_rate)}/s, out ${fmtNumber(n.out_rate)}/s\n` +
           `records in ${n.records_in}, out ${n.records_out}</title>` +
           `<rect class="box" width="${W}" height="${H}" rx="6"/>` +
           `<text x="8" y="17">${esc(name)}</text>` +
           `<text class="kind" x="${W - 8}" y="17" text-anchor="end">${esc(n.kind)}</text>`;
    if (n.own_metrics === false) {
      svg += `<text class="detail" x="8" y="38">side output of its input</text>`;
    } else {
      svg += `<text class="rate" x="8" y="38" data-rate="${rate}">` +
             `${fmtNumber(rate)}/s ${n.sink ? 'in' : 'out'}</text>` +
             `<text class="detail" x="${W - 8}" y="38" text-anchor="end">` +
             `${fmtNumber(n.records_out || n.records_in)} total</text>`;
    }
    // Backpressure (red) of the workers running this operator, or the fill of
    // an exchange's rings (violet).
    const share = n.exchange ? (n.queue_fill_max || 0) : bp;
    const label = n.exchange ? `queue ${pct(n.queue_fill)} (max ${pct(n.queue_fill_max)})`
                             : `backpressure ${pct(bp)}`;
    svg += `<text class="detail" x="8" y="56">${label}</text>` +
           `<rect class="bar-bg" x="8" y="62" width="${W - 16}" height="6" rx="3"/>` +
           `<rect class="${n.exchange ? 'bar-fill' : 'bar-bp'}" x="8" y="62" ` +
           `width="${Math.max(0, Math.min(1, share)) * (W - 16)}" height="6" rx="3"/></g>`;
  }
  svg += '</svg>';
  el.innerHTML = svg;
}

// ---------------------------------------------------------------------------
// Charts.

// series: [{name, points: [[t_ms, value], ...]}]; draws the window ending at now_ms.
function lineChart(el, series, opts) {
  const W = 560, H = 190, L = 48, R = 10, T = 10, B = 24;
  const now = opts.now, span = opts.spanMs, t0 = now - span;
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (isFinite(v)) max = Math.max(max, v);
  if (opts.maxY !== undefined) max = Math.max(max, opts.maxY);
  max = max > 0 ? max * 1.1 : 1;
  const x = (t) => L + (W - L - R) * Math.max(0, (t - t0) / span);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let svg = `<svg xmlns="${SVG_NS}" viewBox="0 0 ${W} ${H}">`;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg += `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>` +
           `<text x="${L - 4}" y="${y(v) + 3}" text-anchor="end">${esc((opts.fmt || fmtNumber)(v))}</text>`;
  }
  // Time ticks: every 10 s up to two minutes shown, then every minute.
  const step = span <= 120000 ? 10000 : 60000;
  for (let k = 0; k * step <= span; k++) {
    const t = now - k * step;
    const label = k === 0 ? 'now' : (step < 60000 ? `-${k * step / 1000}s` : `-${k}m`);
    svg += `<text x="${x(t)}" y="${H - 8}" text-anchor="middle">${label}</text>`;
  }
  svg += `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>` +
         `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>`;
  let drawn = 0;
  series.forEach((s, i) => {
    const pts = s.points.filter(([t, v]) => t >= t0 && v !== null && isFinite(v));
    if (pts.length === 0) return;
    drawn++;
    const d = pts.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    svg += `<path class="series" stroke="${s.color || COLORS[i % COLORS.length]}" d="${d.join('')}"/>`;
  });
  if (drawn === 0) {
    svg += `<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">` +
           `${esc(opts.empty || 'no data yet')}</text>`;
  }
  svg += '</svg>';
  const legend = series.map((s, i) =>
      `<span><i style="background:${s.color || COLORS[i % COLORS.length]}"></i>${esc(s.name)}</span>`);
  el.innerHTML = svg + `<div class="legend">${legend.join('')}</div>`;
}

function barChart(el, bars, opts) {
  const W = 560, H = 150, L = 48, R = 10, T = 10, B = 22;
  let max = 0;
  for (const b of bars) max = Math.max(max, b.value);
  max = max > 0 ? max * 1.1 : 1;
  const slot = bars.length ? (W - L - R) / bars.length : 0;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let svg = `<svg xmlns="${SVG_NS}" viewBox="0 0 ${W} ${H}">`;
  for (let i = 0; i <= 3; i++) {
    const v = (max * i) / 3;
    svg += `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>` +
           `<text x="${L - 4}" y="${y(v) + 3}" text-anchor="end">${esc(opts.fmt(v))}</text>`;
  }
  bars.forEach((b, i) => {
    const h = H - B - y(b.value);
    svg += `<rect x="${L + i * slot + slot * 0.15}" y="${y(b.value)}" width="${slot * 0.7}" ` +
           `height="${Math.max(h, 0.5)}" fill="${b.color}"><title>${esc(b.title)}</title></rect>`;
    if (bars.length <= 20 || i % Math.ceil(bars.length / 20) === 0) {
      svg += `<text x="${L + (i + 0.5) * slot}" y="${H - 8}" text-anchor="middle">${esc(b.label)}</text>`;
    }
  });
  if (bars.length === 0) {
    svg += `<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">${esc(opts.empty)}</text>`;
  }
  el.innerHTML = svg + '</svg>';
}

function table(el, head, rows) {
  el.innerHTML = '<thead><tr>' +
      head.map((h) => `<th class="${h.num ? 'num' : ''}">${esc(h.title)}</th>`).join('') +
      '</tr></thead><tbody>' +
      rows.map((r) => '<tr>' + r.map((c, i) =>
          `<td class="${head[i].num ? 'num' : ''} ${c && c.cls ? c.cls : ''}">` +
          `${esc(c && c.text !== undefined ? c.text : c)}</td>`).join('') + '</tr>').join('') +
      '</tbody>';
}

// ---------------------------------------------------------------------------

function render(job) {
  const now = job.job.now_ms;
  document.title = `weir: ${job.job.name} (${job.job.status})`;
  document.getElementById('job-name').textContent = job.job.name;
  const status = document.getElementById('job-status');
  status.textContent = job.job.status;
  status.className = 'badge ' + job.job.status;
  const uptime = (now - job.job.started_ms) / 1000;
  document.getElementById('job-facts').textContent =
      `parallelism ${job.job.parallelism} · ${job.job.state_backend} state · ` +
      `up ${uptime < 120 ? uptime.toFixed(0) + ' s' : (uptime / 60).toFixed(1) + ' min'}` +
      (job.job.error ? ' · ' + job.job.error : '');

  drawGraph(document.getElementById('graph'), job);

  const nodes = job.graph.nodes;
  const history = job.history || [];
  // The charts show what the job kept (up to five minutes), at least a minute.
  const spanMs = Math.min(300000, Math.max(60000, history.length ? now - history[0].t_ms : 0));
  const series = [];
  nodes.forEach((n, i) => {
    if (n.source) series.push({name: `${n.name} (out)`, points: history.map((s) => [s.t_ms, s.out_rate[i]])});
    if (n.sink) series.push({name: `${n.name} (in)`, points: history.map((s) => [s.t_ms, s.in_rate[i]])});
  });
  lineChart(document.getElementById('chart-throughput'), series,
            {now, spanMs, fmt: fmtNumber, empty: 'rates appear after two samples'});
  lineChart(document.getElementById('chart-latency'), [
    {name: 'p50', color: '#2f6fdf', points: history.map((s) => [s.t_ms, s.lag_p50_ms])},
    {name: 'p99', color: '#d64545', points: history.map((s) => [s.t_ms, s.lag_p99_ms])},
  ], {now, spanMs, fmt: fmtMs, empty: 'no records reached a sink in this window'});

  const workerSeries = [];
  job.workers.forEach((w, i) => {
    workerSeries.push({name: `worker ${w.worker} busy`, color: COLORS[(2 * i) % COLORS.length],
                       points: history.map((s) => [s.t_ms, s.busy[i]])});
    workerSeries.push({name: `worker ${w.worker} backpressured`, color: COLORS[(2 * i + 4) % COLORS.length],
                       points: history.map((s) => [s.t_ms, s.backpressure[i]])});
  });
  lineChart(document.getElementById('chart-workers'), workerSeries,
            {now, spanMs, maxY: 1 / 1.1, fmt: (v) => pct(v)});
  table(document.getElementById('workers'),
        [{title: 'worker'}, {title: 'busy', num: true}, {title: 'backpressured', num: true},
         {title: 'busy s', num: true}, {title: 'idle s', num: true}, {title: 'backpressured s', num: true}],
        job.workers.map((w) => [w.worker, pct(w.busy), pct(w.backpressure), w.busy_seconds.toFixed(1),
                                w.idle_seconds.toFixed(1), w.backpressured_seconds.toFixed(1)]));

  table(document.getElementById('watermarks'),
        [{title: 'operator'}, {title: 'watermark'}, {title: 'behind now', num: true},
         {title: 'late records', num: true}],
        nodes.filter((n) => n.own_metrics).map((n) => [
          n.name,
          n.watermark_ended ? 'end of input' : (n.watermark_ms === null ? 'none yet' : fmtTime(n.watermark_ms)),
          n.watermark_ms === null ? '–' : fmtMs(now - n.watermark_ms),
          n.late_records]));

  const lag = job.kafka_lag || [];
  lineChart(document.getElementById('chart-lag'),
            [{name: 'total lag', color: '#e07b24', points: history.map((s) => [s.t_ms, s.consumer_lag])}],
            {now, spanMs, fmt: fmtNumber, empty: lag.length ? 'no data yet' : 'no Kafka source'});
  table(document.getElementById('kafka-lag'),
        [{title: 'source'}, {title: 'topic'}, {title: 'partition', num: true}, {title: 'worker', num: true},
         {title: 'lag', num: true}],
        lag.map((l) => [l.operator, l.topic, l.partition, l.worker, fmtNumber(l.lag)]));

  const cp = job.checkpoints;
  const summary = document.getElementById('checkpoint-summary');
  if (!cp.enabled) {
    summary.textContent = 'checkpoints are off (no PipelineOptions::checkpoints.storage)';
  } else {
    summary.textContent = `${cp.completed} completed · ${cp.failed} failed · last complete ` +
        `#${cp.last_completed_id}` + (cp.interval_ms ? ` · every ${fmtMs(cp.interval_ms)}` : '');
  }
  const records = (cp.history || []);
  barChart(document.getElementById('chart-checkpoints'), records.map((r) => ({
    value: r.duration_ms, label: '#' + r.id, color: r.status === 'completed' ? '#2e9d5b' : '#d64545',
    title: `#${r.id} ${r.status}: ${fmtMs(r.duration_ms)}, ${fmtBytes(r.size_bytes)}`,
  })), {fmt: fmtMs, empty: 'no checkpoint yet'});
  table(document.getElementById('checkpoints'),
        [{title: 'id', num: true}, {title: 'status'}, {title: 'started'}, {title: 'duration', num: true},
         {title: 'size', num: true}, {title: 'uploaded', num: true}],
        records.slice(-12).reverse().map((r) => [
          r.id, {text: r.status + (r.error ? ': ' + r.error : ''), cls: r.status}, fmtTime(r.trigger_ms),
          fmtMs(r.duration_ms), fmtBytes(r.size_bytes), fmtBytes(r.uploaded_bytes)]));

  // Cluster mode: this page shows the lowest task this process runs; the
  // cluster card shows the rest.
  const cluster = job.cluster;
  document.getElementById('cluster-card').hidden = !cluster;
  if (cluster) {
    document.getElementById('cluster-summary').textContent =
        `job ${cluster.job_id}` + (cluster.instance_id ? ` · instance ${cluster.instance_id}` : '') +
        ` · runs task(s) ${cluster.owned.length ? cluster.owned.join(', ') : 'none'} of ${cluster.tasks}` +
        ` · ${cluster.rebalances} rebalance(s)` +
        (cluster.last_rebalance_ms ? `, last at ${fmtTime(cluster.last_rebalance_ms)} ` +
                                     `(${fmtMs(cluster.last_rebalance_seconds * 1000)})` : '');
    table(document.getElementById('cluster-tasks'),
          [{title: 'task', num: true}, {title: 'here'}, {title: 'last checkpoint', num: true},
           {title: 'committed'}, {title: 'input'}],
          cluster.task_checkpoints.map((t) => [
            t.task, cluster.owned.includes(t.task) ? 'yes' : '', t.checkpoint, fmtTime(t.committed_ms),
            t.final ? 'ended' : 'running']));
    table(document.getElementById('repartition-lag'),
          [{title: 'task', num: true}, {title: 'repartition topic'}, {title: 'lag', num: true}],
          cluster.repartition_lag.map((l) => [l.task, l.topic, l.lag < 0 ? '–' : fmtNumber(l.lag)]));
  }

  let maxRate = 0;
  for (const n of nodes) maxRate = Math.max(maxRate, nodeRate(n));
  document.body.dataset.maxRate = String(maxRate);
  document.body.dataset.status = job.job.status;
}

let polls = 0;
async function poll() {
  const error = document.getElementById('poll-error');
  try {
    const response = await fetch('api/v1/job', {cache: 'no-store'});
    if (!response.ok) throw new Error('HTTP ' + response.status);
    render(await response.json());
    error.hidden = true;
    document.body.dataset.polls = String(++polls);
  } catch (e) {
    error.textContent = (e instanceof TypeError && /fetch/i.test(e.message)
                             ? 'cannot reach the job: ' : 'cannot update: ') + e.message;
    error.hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

poll();
