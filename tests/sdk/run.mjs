// Real SDK clients against a running tollgate whose providers are the fake upstream
// (tests/support/fake_upstream): an `openai`-type provider serving TOLLGATE_OPENAI_MODEL and an
// `anthropic`-type provider serving TOLLGATE_ANTHROPIC_MODEL. Run by
// tests/integration/sdk_test.cpp; by hand:
//   TOLLGATE_URL=http://127.0.0.1:8080 node tests/sdk/run.mjs
// Exits 0 only if every check passed; the last line is "N passed, M failed".

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.TOLLGATE_URL;
if (!base) {
  console.error('run.mjs: TOLLGATE_URL is not set (e.g. http://127.0.0.1:8080)');
  process.exit(2);
}
const openaiModel = process.env.TOLLGATE_OPENAI_MODEL ?? 'gpt-test';
const anthropicModel = process.env.TOLLGATE_ANTHROPIC_MODEL ?? 'claude-test';

// Whatever happens, never hang the test that runs us.
setTimeout(() => {
  console.error('run.mjs: timed out after 60 s');
  process.exit(3);
}, 60_000).unref();

// The keys are the client's: tollgate replaces them with its own provider keys.
const openai = new OpenAI({ apiKey: 'sk-client-openai', baseURL: `${base}/v1`, maxRetries: 0, timeout: 10_000 });
const anthropic = new Anthropic({ apiKey: 'sk-client-anthropic', baseURL: base, maxRetries: 0, timeout: 10_000 });

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

const hello = [{ role: 'user', content: 'Say hello' }];
// The fake's script for translated providers travels in the last user message.
const scripted = (script) => [{ role: 'user', content: `fake:${JSON.stringify(script)}` }];

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

async function collect(stream) {
  const out = { text: '', usage: null, finish: [], chunks: 0 };
  for await (const chunk of stream) {
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      if (choice.delta?.content) out.text += choice.delta.content;
      if (choice.finish_reason) out.finish.push(choice.finish_reason);
    }
  }
  return out;
}

// ---- OpenAI SDK --------------------------------------------------------------------------

await check('openai: models.list names both providers\' models', async () => {
  const ids = [];
  for await (const model of openai.models.list()) ids.push(model.id);
  for (const id of [openaiModel, anthropicModel]) {
    if (!ids.includes(id)) throw new Error(`${id} missing from ${JSON.stringify(ids)}`);
  }
});

for (const model of [openaiModel, anthropicModel]) {
  await check(`openai: chat.completions.create, ${model}`, async () => {
    const r = await openai.chat.completions.create({ model, messages: hello });
    eq(r.object, 'chat.completion', 'object');
    eq(r.choices[0].message.content, 'w0 w1 w2 w3 w4', 'content');
    eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
    eq([r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens], [10, 5, 15], 'usage');
  });

  await check(`openai: streamed chat with include_usage, ${model}`, async () => {
    const stream = await openai.chat.completions.create({
      model,
      messages: scripted({ events: 4, prompt_tokens: 6 }),
      stream: true,
      stream_options: { include_usage: true },
    });
    const got = await collect(stream);
    eq(got.text, 'w0 w1 w2 w3 ', 'streamed text');
    eq(got.finish, ['stop'], 'finish reasons');
    if (!got.usage) throw new Error('no usage chunk');
    eq([got.usage.prompt_tokens, got.usage.completion_tokens], [6, 4], 'usage');
  });

  await check(`openai: a stream that breaks mid-way throws an APIError, ${model}`, async () => {
    const fault = { events: 6, fail_after: 2, fail_mode: 'reset' };
    // The openai provider gets the "fake" body member (an extra body param); a translated one
    // only keeps the message text.
    const stream = await openai.chat.completions.create(
      model === openaiModel
        ? { model, messages: hello, stream: true, fake: fault }
        : { model, messages: scripted(fault), stream: true },
    );
    let text = '';
    let thrown = null;
    try {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    } catch (e) {
      thrown = e;
    }
    if (thrown === null) throw new Error(`the stream ended without an error; text ${JSON.stringify(text)}`);
    if (!(thrown instanceof OpenAI.APIError)) throw new Error(`threw ${thrown?.constructor?.name}, not an APIError: ${thrown}`);
    eq(text, 'w0 w1 ', 'text before the failure');
  });

  await check(`openai: a provider 429 is a RateLimitError, ${model}`, async () => {
    const request =
      model === openaiModel
        ? { model, messages: hello, fake: { status: 429 } }
        : { model, messages: scripted({ status: 429 }) };
    try {
      await openai.chat.completions.create(request);
    } catch (e) {
      if (!(e instanceof OpenAI.RateLimitError)) throw new Error(`threw ${e?.constructor?.name}: ${e}`);
      eq(e.status, 429, 'status');
      return;
    }
    throw new Error('no error');
  });
}

await check('openai: tool calls through the anthropic provider', async () => {
  const r = await openai.chat.completions.create({ model: anthropicModel, messages: hello, tools: [weatherTool] });
  eq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
  const call = r.choices[0].message.tool_calls?.[0];
  if (!call) throw new Error(`no tool call in ${JSON.stringify(r.choices[0].message)}`);
  eq(call.function.name, 'get_weather', 'name');
  eq(JSON.parse(call.function.arguments), { city: 'Paris' }, 'arguments');
});

// ---- Anthropic SDK (tollgate forwards /v1/messages natively) ------------------------------

await check('anthropic: messages.create', async () => {
  const m = await anthropic.messages.create({ model: anthropicModel, max_tokens: 64, messages: hello });
  eq(m.type, 'message', 'type');
  eq(m.model, anthropicModel, 'model');
  eq(m.content.map((b) => b.type), ['text'], 'content block types');
  eq(m.content[0].text, 'w0 w1 w2 w3 w4', 'text');
  eq(m.stop_reason, 'end_turn', 'stop_reason');
  eq([m.usage.input_tokens, m.usage.output_tokens], [10, 5], 'usage');
});

await check('anthropic: messages.stream', async () => {
  const stream = anthropic.messages.stream({
    model: anthropicModel,
    max_tokens: 64,
    messages: scripted({ events: 3, prompt_tokens: 12 }),
  });
  let text = '';
  stream.on('text', (delta) => {
    text += delta;
  });
  const final = await stream.finalMessage();
  eq(text, 'w0 w1 w2 ', 'streamed text');
  eq(final.content[0].text, 'w0 w1 w2 ', 'final text');
  eq(final.stop_reason, 'end_turn', 'stop_reason');
  eq([final.usage.input_tokens, final.usage.output_tokens], [12, 3], 'usage');
});

await check('anthropic: tool use, streamed', async () => {
  const stream = anthropic.messages.stream({
    model: anthropicModel,
    max_tokens: 64,
    messages: hello,
    tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
  });
  const final = await stream.finalMessage();
  eq(final.stop_reason, 'tool_use', 'stop_reason');
  const block = final.content.find((b) => b.type === 'tool_use');
  if (!block) throw new Error(`no tool_use block in ${JSON.stringify(final.content)}`);
  eq([block.name, block.input], ['get_weather', { city: 'Paris' }], 'tool use');
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
