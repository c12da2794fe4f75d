// `bitnet serve` driven by the official OpenAI JavaScript client (pinned in scripts/setup.sh):
// chat and text completions, streamed and not, must equal `bitnet run --greedy` byte for byte
// on the same prompt (the chat rendered with the server's template), and the client's error
// classes must come out of a wrong key and an unsupported field.
//   node openai_client.mjs BITNET OPENAI_PACKAGE_DIR
import { spawn, execFile, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [bitnet, openaiDir] = process.argv.slice(2);
if (!bitnet || !openaiDir) {
  console.error('usage: node openai_client.mjs BITNET OPENAI_PACKAGE_DIR');
  process.exit(2);
}
const require = createRequire(import.meta.url);
let OpenAI;
try {
  ({ OpenAI } = require(resolve(openaiDir)));
} catch (e) {
  console.error(`cannot load the openai package from ${openaiDir} (run scripts/setup.sh): ${e.message}`);
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'bitnet-openai-'));
const model = join(dir, 'tiny.gguf');
execFileSync(bitnet, ['synth', '--preset', 'tiny', '--arch', 'bitnet', '--weights', 'tq2_0', '-o', model],
             { stdio: ['ignore', 'ignore', 'inherit'] });

const KEY = 'sk-bitnet-test';
const server = spawn(bitnet, ['serve', '-m', model, '--port', '0', '-t', '2', '--parallel', '2',
                              '--api-key', KEY], { stdio: ['ignore', 'ignore', 'pipe'] });
let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok || !detail ? '' : ': ' + detail}`);
  if (!ok) failures++;
}
function finish(code) {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
setTimeout(() => { console.error('timed out'); finish(1); }, 120000).unref();

// The port from the server's first line, then /health until the model is loaded.
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
  await new Promise((r) => setTimeout(r, 50));
}

// Asynchronous, so the event loop keeps running while `bitnet run` does: the server closes a
// keep-alive connection idle for 5 s, and a client whose loop was blocked through that close
// (execFileSync; `run` takes about that long under ASan) would send its next request on the
// dead socket and get a connection error.
function run(prompt, n) {
  const args = ['run', '-m', model, '-p', prompt, '--special', '-n', String(n), '--greedy', '-t', '2'];
  return new Promise((resolve, reject) => {
    execFile(bitnet, args, { encoding: 'utf8' }, (err, out) => {
      if (err) return reject(err);
      resolve(out.endsWith('\n') ? out.slice(0, -1) : out);  // run ends its output with a newline
    });
  });
}

const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 });
try {
  // Chat.
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a colour.' }];
  const rendered = await (await fetch(`${base}/apply-template`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ messages }),
  })).json();
  const wantChat = await run(rendered.prompt, 12);
  check(wantChat.length > 0, 'bitnet run replied to the chat');
  const chat = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 12, temperature: 0 });
  check(chat.choices[0].message.content === wantChat, 'chat equals bitnet run --greedy',
        JSON.stringify([chat.choices[0].message.content, wantChat]));
  check(chat.usage.completion_tokens > 0 && chat.usage.prompt_tokens > 0, 'chat usage');

  const chatStream = await client.chat.completions.create({
    model: 'tiny', messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null;
  for await (const chunk of chatStream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
  check(text === wantChat, 'streamed chat equals bitnet run --greedy', JSON.stringify([text, wantChat]));
  check(finish === chat.choices[0].finish_reason, 'streamed finish_reason', `${finish}`);
  check(usage && usage.completion_tokens === chat.usage.completion_tokens, 'streamed usage');

  // Text completion.
  const prompt = 'The capital of France is';
  const wantText = await run(prompt, 16);
  check(wantText.length > 0, 'bitnet run completed the prompt');
  const comp = await client.completions.create({ model: 'tiny', prompt, max_tokens: 16, temperature: 0 });
  check(comp.choices[0].text === wantText, 'completion equals bitnet run --greedy',
        JSON.stringify([comp.choices[0].text, wantText]));
  const compStream = await client.completions.create({ model: 'tiny', prompt, max_tokens: 16, temperature: 0, stream: true });
  let ctext = '';
  for await (const chunk of compStream) ctext += chunk.choices[0]?.text ?? '';
  check(ctext === wantText, 'streamed completion equals bitnet run --greedy', JSON.stringify([ctext, wantText]));

  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === 'tiny.gguf', 'models.list');

  // Errors through the client's classes.
  try {
    await client.chat.completions.create({ model: 'tiny', messages, tools: [{ type: 'function', function: { name: 'f' } }] });
    check(false, 'tools refused');
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400, 'tools refused with BadRequestError', String(e));
  }
  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  try {
    await wrong.models.list();
    check(false, 'wrong key refused');
  } catch (e) {
    check(e instanceof OpenAI.AuthenticationError && e.status === 401, 'wrong key refused with AuthenticationError', String(e));
  }
} catch (e) {
  check(false, 'no unexpected error', String(e));
}
check((await fetch(`${base}/health`)).status === 200, 'healthy at the end');
console.log(failures === 0 ? 'all passed' : `${failures} failed`);
finish(failures === 0 ? 0 : 1);
