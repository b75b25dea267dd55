using Microsoft.ML.Tokenizers;

namespace Kangaroo.Native.Loader;

/// <summary>Temporary minimal tokenizer (replaced by the full implementation on the loader branch).</summary>
public sealed class TextTokenizer
{
    private readonly LlamaTokenizer _tokenizer;

    private TextTokenizer(LlamaTokenizer tokenizer) => _tokenizer = tokenizer;

    public int VocabSize => _tokenizer.Vocabulary.Count;
    public int BosId => _tokenizer.BeginningOfSentenceId;
    public int EosId => _tokenizer.EndOfSentenceId;

    public static TextTokenizer Load(string path)
    {
        using var stream = File.OpenRead(path);
        return new TextTokenizer(LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false));
    }

    public int[] Encode(string text, bool addBos)
    {
        var ids = text.Length == 0 ? [] : _tokenizer.EncodeToIds(text).ToArray();
        return addBos ? [BosId, .. ids] : ids;
    }

    public string Decode(IEnumerable<int> ids) => _tokenizer.Decode(ids) ?? "";

    public Stream NewStream() => new(this);

    public sealed class Stream(TextTokenizer owner)
    {
        private readonly List<int> _ids = [];
        private int _emitted;

        public string Append(int id)
        {
            _ids.Add(id);
            var text = owner.Decode(_ids);
            if (text.EndsWith('\uFFFD')) return "";
            var result = text[Math.Min(_emitted, text.Length)..];
            _emitted = text.Length;
            return result;
        }
    }
}
