// usage: node oracle.js tokenizer.json texts.json out.jsonl  -> {text, ids, ids_with_special, decoded}
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
(async () => {
  const [file, textsFile, out] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(file);
  tok.disableTruncation(); // a batching setting, not part of tokenization
  const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
  const lines = [];
  for (const text of texts) {
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = plain.getIds();
    const decoded = await tok.decode(ids, true);
    lines.push(JSON.stringify({ text, ids, ids_with_special: special.getIds(), decoded }));
  }
  fs.writeFileSync(out, lines.join('\n') + '\n');
})();
