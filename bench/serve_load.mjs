// Load test of `bitnet serve`: one client alone, then C concurrent streaming clients, then one
// client alone again, against the same server; prints requests by outcome, time to first token
// (p50/p99), the server's RSS over the loaded phase, and aggregate generated tok/s against the
// single client's (mean of the two single phases, which bracket the loaded one because this
// machine's memory bandwidth drifts).
//   node bench/serve_load.mjs BITNET MODEL [--clients 32] [--seconds 60] [--single-seconds 20]
//        [--parallel 8] [--threads 2] [--max-tokens 64]
// e.g. build/bin/bitnet synth --preset 2b4t --weights i2_s -o models/2b4t-i2_s.gguf
//      node bench/serve_load.mjs build/bin/bitnet models/2b4t-i2_s.gguf
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const [bitnet, model] = args;
if (!bitnet || !model) {
  console.error('usage: node bench/serve_load.mjs BITNET MODEL [--clients 32] [--seconds 60] ' +
                '[--single-seconds 20] [--parallel 8] [--threads 2] [--max-tokens 64]');
  process.exit(2);
}
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const clients = opt('clients', 32), seconds = opt('seconds', 60), single = opt('single-seconds', 20);
const parallel = opt('parallel', 8), threads = opt('threads', 2), maxTokens = opt('max-tokens', 64);

const server = spawn(bitnet, ['serve', '-m', model, '--port', '0', '-t', String(threads),
                              '--parallel', String(parallel), '--queue', String(clients)],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise((resolve, reject) => {
  let err = '';
  server.stderr.on('data', (d) => {
    err += d;
    const m = err.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`bitnet serve exited with ${code}: ${err}`)));
});
const base = `http://127.0.0.1:${port}`;
for (;;) {
  const r = await fetch(`${base}/health`).catch(() => null);
  if (r && r.status === 200) break;
  await new Promise((r) => setTimeout(r, 100));
}
const rssMiB = () => {
  const m = readFileSync(`/proc/${server.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
};

const words = ['river', 'stone', 'light', 'market', 'bread', 'water', 'window', 'evening', 'island', 'field'];
let serial = 0;
// One streamed request; resolves to {status, ttft_ms, tokens}.
async function request() {
  const n = serial++;
  const prompt = `Request ${n}: tell me about the ${words[n % 10]} and the ${words[(n * 7 + 3) % 10]}.`;
  const t0 = performance.now();
  let res;
  try {
    res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true,
                             stream_options: { include_usage: true } }),
    });
  } catch (e) {
    return { status: 'network', tokens: 0 };
  }
  if (res.status !== 200) {
    await res.text().catch(() => '');
    return { status: res.status, tokens: 0 };
  }
  let ttft = null, tokens = 0, buf = '';
  const dec = new TextDecoder();
  try {
    for await (const part of res.body) {
      buf += dec.decode(part, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) return { status: 'stream-error', tokens: 0 };
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        if (ttft === null && chunk.choices[0]?.text) ttft = performance.now() - t0;
      }
    }
  } catch (e) {
    return { status: 'network', tokens: 0 };
  }
  return { status: 200, ttft_ms: ttft ?? performance.now() - t0, tokens };
}

async function phase(nClients, secs) {
  const until = performance.now() + secs * 1000;
  const results = [];
  const rss = [];
  const sampler = setInterval(() => rss.push(rssMiB()), 1000);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: nClients }, async () => {
    while (performance.now() < until) {
      const r = await request();
      results.push(r);
      if (r.status === 503) await new Promise((r) => setTimeout(r, 200));  // as Retry-After asks
    }
  }));
  clearInterval(sampler);
  const wall = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => r.status === 200);
  const tokens = ok.reduce((a, r) => a + r.tokens, 0);
  const ttft = ok.map((r) => r.ttft_ms).sort((a, b) => a - b);
  const pct = (p) => (ttft.length ? ttft[Math.min(ttft.length - 1, Math.floor(p * ttft.length))] : NaN);
  const count = (s) => results.filter((r) => r.status === s).length;
  return {
    clients: nClients, wall, requests: results.length, ok: ok.length, refused: count(503),
    failed: results.length - ok.length - count(503), tokens, tok_s: tokens / wall,
    ttft_p50: pct(0.5), ttft_p99: pct(0.99), rss,
  };
}

function show(p) {
  const rss = p.rss.slice(Math.min(10, Math.floor(p.rss.length / 2)));  // after warm-up
  console.log(`${String(p.clients).padStart(2)} client(s), ${p.wall.toFixed(0)} s: ${p.requests} requests ` +
              `(${p.ok} ok, ${p.refused} refused with 503, ${p.failed} failed), ${p.tokens} tokens, ` +
              `${p.tok_s.toFixed(2)} tok/s, time to first token p50 ${p.ttft_p50.toFixed(0)} ms ` +
              `p99 ${p.ttft_p99.toFixed(0)} ms, RSS after warm-up ${Math.min(...rss).toFixed(0)}-` +
              `${Math.max(...rss).toFixed(0)} MiB`);
}

const a = await phase(1, single);
show(a);
const loaded = await phase(clients, seconds);
show(loaded);
const b = await phase(1, single);
show(b);
const solo = (a.tok_s + b.tok_s) / 2;
console.log(`aggregate ${loaded.tok_s.toFixed(2)} tok/s with ${clients} clients on ${parallel} slots = ` +
            `${(loaded.tok_s / solo).toFixed(2)}x one client's ${solo.toFixed(2)} tok/s ` +
            `(${threads} threads, ${maxTokens} tokens per request); failed requests: ${loaded.failed}`);
server.kill('SIGTERM');
process.exit(loaded.failed === 0 ? 0 : 1);
