// Checks GGUF files with an independent parser, Hugging Face's @huggingface/gguf (never a product
// dependency): each file must parse, be a llama model with every tensor its llama.* keys imply, at the
// shape and alignment they imply, inside the file and not overlapping, with a tokenizer of
// llama.vocab_size tokens.
//
//   npm install --prefix /tmp/gguf-oracle @huggingface/gguf      # once, anywhere outside the repository
//   kangaroo convert --out /tmp/s.gguf --dtype q8_0
//   node scripts/check-gguf.mjs /tmp/s.gguf [more.gguf ...]      # GGUF_ORACLE=/tmp/gguf-oracle by default
//
// Prints one line per file and exits non-zero on the first problem.
import { createRequire } from "node:module";
import { statSync } from "node:fs";
import path from "node:path";

const oracle = process.env.GGUF_ORACLE ?? "/tmp/gguf-oracle";
const { gguf } = await import(createRequire(path.join(oracle, "package.json")).resolve("@huggingface/gguf"));

// ggml type -> [values per block, bytes per block] for the types the engine writes.
const blocks = { 0: [1, 4], 1: [1, 2], 30: [1, 2], 8: [32, 34], 2: [32, 18] };
const layerTensors = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"];

function fail(file, problem) {
  console.error(`${file}: ${problem}`);
  process.exit(1);
}

for (const file of process.argv.slice(2)) {
  const { metadata: m, tensorInfos, tensorDataOffset } = await gguf(path.resolve(file), { allowLocalFile: true });
  const num = (key) => (m[key] === undefined ? fail(file, `${key} is missing`) : Number(m[key]));
  if (m["general.architecture"] !== "llama") fail(file, `architecture ${m["general.architecture"]}`);
  const alignment = Number(m["general.alignment"] ?? 32);
  const dataOffset = Number(tensorDataOffset);
  if (dataOffset % alignment !== 0) fail(file, `data section at ${dataOffset}, not aligned to ${alignment}`);
  const dim = num("llama.embedding_length"), hidden = num("llama.feed_forward_length"), layers = num("llama.block_count");
  const heads = num("llama.attention.head_count"), kvHeads = num("llama.attention.head_count_kv");
  const headDim = Number(m["llama.attention.key_length"] ?? dim / heads), tokens = m["tokenizer.ggml.tokens"];
  if (!Array.isArray(tokens)) fail(file, "tokenizer.ggml.tokens is missing");
  const vocab = Number(m["llama.vocab_size"] ?? tokens.length);
  if (tokens.length !== vocab) fail(file, `${tokens.length} tokens for llama.vocab_size ${vocab}`);
  for (const key of ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"])
    if (m[key]?.length !== vocab) fail(file, `${key} has ${m[key]?.length} entries`);

  // Shapes as GGUF lists them: innermost (row length) first.
  const expected = new Map([["token_embd.weight", [dim, vocab]], ["output_norm.weight", [dim]]]);
  for (let l = 0; l < layers; l++) {
    const shapes = { attn_norm: [dim], attn_q: [dim, heads * headDim], attn_k: [dim, kvHeads * headDim], attn_v: [dim, kvHeads * headDim],
      attn_output: [heads * headDim, dim], ffn_norm: [dim], ffn_gate: [dim, hidden], ffn_up: [dim, hidden], ffn_down: [hidden, dim] };
    for (const name of layerTensors) expected.set(`blk.${l}.${name}.weight`, shapes[name]);
  }
  if (tensorInfos.some((t) => t.name === "output.weight")) expected.set("output.weight", [dim, vocab]);
  if (tensorInfos.length !== expected.size) fail(file, `${tensorInfos.length} tensors, expected ${expected.size}`);

  const size = statSync(file).size;
  const types = {};
  let end = 0;
  for (const t of [...tensorInfos].sort((a, b) => Number(a.offset - b.offset))) {
    const shape = t.shape.map(Number);
    if (JSON.stringify(shape) !== JSON.stringify(expected.get(t.name))) fail(file, `${t.name} has shape [${shape}], expected [${expected.get(t.name)}]`);
    const block = blocks[t.dtype] ?? fail(file, `${t.name} has ggml type ${t.dtype}`);
    const values = shape.reduce((a, b) => a * b, 1);
    if (values % block[0] !== 0) fail(file, `${t.name}: ${values} values are not whole blocks`);
    const offset = Number(t.offset), bytes = (values / block[0]) * block[1];
    if (offset % alignment !== 0) fail(file, `${t.name} at data offset ${offset}, not aligned`);
    if (offset < end) fail(file, `${t.name} overlaps the tensor before it`);
    end = offset + bytes;
    if (dataOffset + end > size) fail(file, `${t.name} runs past the end of the file`);
    types[t.dtype] = (types[t.dtype] ?? 0) + 1;
  }
  console.log(`${file}: ok (llama, ${layers} blocks, dim ${dim}, vocab ${vocab}, ${tensorInfos.length} tensors, ggml types ${JSON.stringify(types)})`);
}
