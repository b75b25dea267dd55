using System.Text;

namespace Kangaroo.Native.Templates;

internal enum TokenKind { Text, BlockStart, BlockEnd, VariableStart, VariableEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Value, int Line)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public override string ToString() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}

/// <summary>Splits a template into text and the tokens inside its tags, applying whitespace control as
/// transformers configures Jinja: <c>trim_blocks</c> (the first newline after a block or comment tag is
/// dropped), <c>lstrip_blocks</c> (spaces and tabs before a block or comment tag on its line are dropped),
/// a <c>-</c> inside a tag strips all whitespace on that side, and one trailing newline of the template is dropped.</summary>
internal sealed class TemplateLexer
{
    private static readonly string[] Operators =
        ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private readonly string _source;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _linePos, _lineNumber = 1;

    private TemplateLexer(string source) => _source = source.EndsWith('\n') ? source[..^1] : source;

    public static List<Token> Tokenize(string source)
    {
        var lexer = new TemplateLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    /// <summary>The line of the current position (positions only move forward, so counting is incremental).</summary>
    private int Line
    {
        get
        {
            for (; _linePos < _pos && _linePos < _source.Length; _linePos++) if (_source[_linePos] == '\n') _lineNumber++;
            return _lineNumber;
        }
    }

    private void Run()
    {
        while (_pos < _source.Length)
        {
            var tag = FindTag(_pos);
            var text = _source[_pos..tag];
            var textLine = Line;
            if (tag < _source.Length)
            {
                var marker = tag + 2 < _source.Length ? _source[tag + 2] : '\0';
                var kind = _source[tag + 1];
                if (marker == '-') text = text.TrimEnd();
                else if (kind != '{' && marker != '+') text = StripLineIndent(text, _pos);
            }
            if (text.Length > 0) _tokens.Add(new Token(TokenKind.Text, text, textLine));
            _pos = tag;
            if (_pos >= _source.Length) break;
            switch (_source[_pos + 1])
            {
                case '#': SkipComment(); break;
                case '%': LexTag(TokenKind.BlockStart, TokenKind.BlockEnd, '%'); break;
                default: LexTag(TokenKind.VariableStart, TokenKind.VariableEnd, '}'); break;
            }
        }
        _tokens.Add(new Token(TokenKind.End, "", Line));
    }

    private int FindTag(int from)
    {
        for (var i = _source.IndexOf('{', from); i >= 0 && i + 1 < _source.Length; i = _source.IndexOf('{', i + 1))
            if (_source[i + 1] is '{' or '%' or '#') return i;
        return _source.Length;
    }

    /// <summary>lstrip_blocks: drop the spaces and tabs that are all that precede a tag on its line.</summary>
    private string StripLineIndent(string text, int textStart)
    {
        var end = text.Length;
        while (end > 0 && text[end - 1] is ' ' or '\t') end--;
        var atLineStart = end > 0 ? text[end - 1] == '\n' : textStart == 0 || _source[textStart - 1] == '\n';
        return atLineStart ? text[..end] : text;
    }

    private void AfterTag(bool stripAfter, bool block)
    {
        if (stripAfter) while (_pos < _source.Length && char.IsWhiteSpace(_source[_pos])) _pos++;
        else if (block && _pos < _source.Length && _source[_pos] == '\n') _pos++;
        else if (block && _pos + 1 < _source.Length && _source[_pos] == '\r' && _source[_pos + 1] == '\n') _pos += 2;
    }

    private void SkipComment()
    {
        var end = _source.IndexOf("#}", _pos + 2, StringComparison.Ordinal);
        if (end < 0) throw new ChatTemplateException("comment '{#' is never closed with '#}'", Line);
        var stripAfter = _source[end - 1] == '-' && end - 1 >= _pos + 2;
        _pos = end + 2;
        AfterTag(stripAfter, block: true);
    }

    private void LexTag(TokenKind open, TokenKind close, char closeMark)
    {
        var startLine = Line;
        var opener = _source.Substring(_pos, 2);
        _tokens.Add(new Token(open, opener, startLine));
        _pos += 2;
        if (_pos < _source.Length && _source[_pos] is '-' or '+') _pos++;
        var depth = 0;
        while (true)
        {
            while (_pos < _source.Length && char.IsWhiteSpace(_source[_pos])) _pos++;
            if (_pos >= _source.Length) throw new ChatTemplateException($"tag '{opener}' opened on line {startLine} is never closed", Line);
            var stripAfter = _source[_pos] == '-' && At(_pos + 1, closeMark) && At(_pos + 2, '}');
            if ((stripAfter || (_source[_pos] == closeMark && At(_pos + 1, '}'))) && (depth == 0 || closeMark == '%'))
            {
                _tokens.Add(new Token(close, closeMark + "}", Line));
                _pos += stripAfter ? 3 : 2;
                AfterTag(stripAfter, block: close == TokenKind.BlockEnd);
                return;
            }
            var token = LexToken();
            if (token.Kind == TokenKind.Operator && token.Value is "(" or "[" or "{") depth++;
            else if (token.Kind == TokenKind.Operator && token.Value is ")" or "]" or "}") depth--;
            _tokens.Add(token);
        }
    }

    private bool At(int position, char c) => position < _source.Length && _source[position] == c;

    private Token LexToken()
    {
        var line = Line;
        var c = _source[_pos];
        if (char.IsAsciiLetter(c) || c == '_')
        {
            var start = _pos;
            while (_pos < _source.Length && (char.IsAsciiLetterOrDigit(_source[_pos]) || _source[_pos] == '_')) _pos++;
            return new Token(TokenKind.Name, _source[start.._pos], line);
        }
        if (char.IsAsciiDigit(c))
        {
            var start = _pos;
            while (_pos < _source.Length && (char.IsAsciiDigit(_source[_pos]) || _source[_pos] == '_')) _pos++;
            var isFloat = At(_pos, '.') && _pos + 1 < _source.Length && char.IsAsciiDigit(_source[_pos + 1]);
            if (isFloat)
            {
                _pos++;
                while (_pos < _source.Length && char.IsAsciiDigit(_source[_pos])) _pos++;
            }
            var sign = At(_pos + 1, '+') || At(_pos + 1, '-') ? 1 : 0;
            if ((At(_pos, 'e') || At(_pos, 'E')) && _pos + 1 + sign < _source.Length && char.IsAsciiDigit(_source[_pos + 1 + sign]))
            {
                isFloat = true;
                _pos += 1 + sign;
                while (_pos < _source.Length && char.IsAsciiDigit(_source[_pos])) _pos++;
            }
            return new Token(isFloat ? TokenKind.Float : TokenKind.Integer, _source[start.._pos].Replace("_", ""), line);
        }
        if (c is '\'' or '"') return new Token(TokenKind.String, LexString(c), line);
        foreach (var op in Operators)
        {
            if (string.CompareOrdinal(_source, _pos, op, 0, op.Length) != 0) continue;
            _pos += op.Length;
            return new Token(TokenKind.Operator, op, line);
        }
        throw new ChatTemplateException($"unexpected character '{c}' in a tag", line);
    }

    /// <summary>A quoted string with Python's escapes (an unknown escape keeps its backslash, as Python does).</summary>
    private string LexString(char quote)
    {
        var line = Line;
        var text = new StringBuilder();
        for (_pos++; ; _pos++)
        {
            if (_pos >= _source.Length) throw new ChatTemplateException("string literal is never closed", line);
            var c = _source[_pos];
            if (c == quote)
            {
                _pos++;
                return text.ToString();
            }
            if (c != '\\' || _pos + 1 >= _source.Length)
            {
                text.Append(c);
                continue;
            }
            var e = _source[++_pos];
            switch (e)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case 'b': text.Append('\b'); break;
                case 'f': text.Append('\f'); break;
                case 'v': text.Append('\v'); break;
                case '\\' or '\'' or '"': text.Append(e); break;
                case '\n': break;
                case 'x' or 'u':
                    var digits = e == 'x' ? 2 : 4;
                    if (_pos + digits >= _source.Length || !int.TryParse(_source.AsSpan(_pos + 1, digits), System.Globalization.NumberStyles.HexNumber, null, out var code))
                        throw new ChatTemplateException($"invalid escape '\\{e}' in a string literal", line);
                    text.Append((char)code);
                    _pos += digits;
                    break;
                default: text.Append('\\').Append(e); break;
            }
        }
    }
}
