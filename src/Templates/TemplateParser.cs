using System.Globalization;

namespace Kangaroo.Native.Templates;

/// <summary>Parses template tokens into statements and expressions, with Jinja's precedence:
/// conditional, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>,
/// <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then postfix access, calls, filters and tests.</summary>
internal sealed class TemplateParser
{
    private static readonly HashSet<string> Comparisons = ["==", "!=", "<", ">", "<=", ">="];

    private readonly List<Token> _tokens;
    private int _index;

    private TemplateParser(List<Token> tokens) => _tokens = tokens;

    public static List<Node> Parse(string source)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source));
        return parser.ParseBody([]);
    }

    private Token Peek => _tokens[_index];

    private Token Peek2 => _tokens[Math.Min(_index + 1, _tokens.Count - 1)];

    private Token Next() => _tokens[_index++];

    private bool Accept(TokenKind kind, string value)
    {
        if (!Peek.Is(kind, value)) return false;
        _index++;
        return true;
    }

    private bool AcceptOp(string op) => Accept(TokenKind.Operator, op);

    private bool AcceptName(string name) => Accept(TokenKind.Name, name);

    private Token Expect(TokenKind kind, string? value, string what)
    {
        var token = Peek;
        if (token.Kind != kind || (value is not null && token.Value != value))
            throw new ChatTemplateException($"expected {what}, found {token}", token.Line);
        return Next();
    }

    private string ExpectName(string what) => Expect(TokenKind.Name, null, what).Value;

    private void ExpectBlockEnd() => Expect(TokenKind.BlockEnd, null, "'%}'");

    /// <summary>Statements until a block tag whose name is one of <paramref name="ends"/> (left unconsumed after <c>{%</c>).</summary>
    private List<Node> ParseBody(string[] ends)
    {
        var body = new List<Node>();
        while (true)
        {
            var token = Peek;
            switch (token.Kind)
            {
                case TokenKind.End:
                    if (ends.Length > 0) throw new ChatTemplateException($"missing '{{% {ends[^1]} %}}' before the end of the template", token.Line);
                    return body;
                case TokenKind.Text:
                    body.Add(new TextNode(token.Line, Next().Value));
                    break;
                case TokenKind.VariableStart:
                    Next();
                    body.Add(new OutputNode(token.Line, ParseExpression()));
                    Expect(TokenKind.VariableEnd, null, "'}}'");
                    break;
                case TokenKind.BlockStart:
                    if (Peek2.Kind == TokenKind.Name && ends.Contains(Peek2.Value)) return body;
                    Next();
                    if (ParseStatement(token.Line) is { } node) body.Add(node);
                    break;
                default:
                    throw new ChatTemplateException($"unexpected {token}", token.Line);
            }
        }
    }

    /// <summary>Consumes <c>{% name</c> of the block tag that ended a body.</summary>
    private string EndTag()
    {
        Expect(TokenKind.BlockStart, null, "'{%'");
        return Next().Value;
    }

    private Node? ParseStatement(int line)
    {
        var keyword = Expect(TokenKind.Name, null, "a statement name");
        switch (keyword.Value)
        {
            case "if": return ParseIf(line);
            case "for": return ParseFor(line);
            case "set": return ParseSet(line);
            case "macro": return ParseMacro(line);
            case "call": return ParseCallBlock(line);
            case "break" or "continue":
                ExpectBlockEnd();
                return new LoopControlNode(line, keyword.Value == "break");
            case "generation" or "endgeneration":
                // transformers' marker of assistant text for training masks; it renders nothing.
                ExpectBlockEnd();
                return null;
            default:
                throw new ChatTemplateException(keyword.Value.StartsWith("end", StringComparison.Ordinal) || keyword.Value is "elif" or "else"
                    ? $"unexpected '{{% {keyword.Value} %}}'"
                    : $"unsupported statement '{{% {keyword.Value} %}}'", line);
        }
    }

    private IfNode ParseIf(int line)
    {
        var branches = new List<(Expr, List<Node>)>();
        var condition = ParseExpression();
        while (true)
        {
            ExpectBlockEnd();
            branches.Add((condition, ParseBody(["elif", "else", "endif"])));
            var tag = EndTag();
            if (tag == "elif")
            {
                condition = ParseExpression();
                continue;
            }
            var elseBody = new List<Node>();
            if (tag == "else")
            {
                ExpectBlockEnd();
                elseBody = ParseBody(["endif"]);
                EndTag();
            }
            ExpectBlockEnd();
            return new IfNode(line, branches, elseBody);
        }
    }

    private ForNode ParseFor(int line)
    {
        var targets = new List<string> { ExpectName("a loop variable") };
        while (AcceptOp(",")) targets.Add(ExpectName("a loop variable"));
        Expect(TokenKind.Name, "in", "'in'");
        var iterable = ParseExpression(allowConditional: false);
        var filter = AcceptName("if") ? ParseExpression(allowConditional: false) : null;
        if (Peek.Is(TokenKind.Name, "recursive")) throw new ChatTemplateException("unsupported 'recursive' loop", Peek.Line);
        ExpectBlockEnd();
        var body = ParseBody(["else", "endfor"]);
        var elseBody = new List<Node>();
        if (EndTag() == "else")
        {
            ExpectBlockEnd();
            elseBody = ParseBody(["endfor"]);
            EndTag();
        }
        ExpectBlockEnd();
        return new ForNode(line, targets, iterable, filter, body, elseBody);
    }

    private Node ParseSet(int line)
    {
        var targets = new List<string> { ExpectName("a variable name") };
        string? attribute = null;
        if (AcceptOp(".")) attribute = ExpectName("an attribute name");
        else while (AcceptOp(",")) targets.Add(ExpectName("a variable name"));
        if (AcceptOp("="))
        {
            var value = ParseTuple();
            ExpectBlockEnd();
            return new SetNode(line, targets, attribute, value);
        }
        if (attribute is not null || targets.Count > 1) throw new ChatTemplateException("expected '=' in '{% set %}'", Peek.Line);
        if (Peek.Is(TokenKind.Operator, "|")) throw new ChatTemplateException("unsupported filter on a '{% set %}' block", Peek.Line);
        ExpectBlockEnd();
        var body = ParseBody(["endset"]);
        EndTag();
        ExpectBlockEnd();
        return new SetBlockNode(line, targets[0], body);
    }

    private MacroNode ParseMacro(int line)
    {
        var name = ExpectName("a macro name");
        var parameters = new List<(string, Expr?)>();
        Expect(TokenKind.Operator, "(", "'('");
        while (!AcceptOp(")"))
        {
            if (parameters.Count > 0) Expect(TokenKind.Operator, ",", "',' or ')'");
            var parameter = ExpectName("a parameter name");
            parameters.Add((parameter, AcceptOp("=") ? ParseExpression() : null));
        }
        ExpectBlockEnd();
        var body = ParseBody(["endmacro"]);
        EndTag();
        ExpectBlockEnd();
        return new MacroNode(line, name, parameters, body);
    }

    private CallBlockNode ParseCallBlock(int line)
    {
        if (Peek.Is(TokenKind.Operator, "(")) throw new ChatTemplateException("unsupported '{% call(args) %}' with caller parameters", line);
        if (ParseExpression() is not CallExpr call) throw new ChatTemplateException("expected a macro call after '{% call'", line);
        ExpectBlockEnd();
        var body = ParseBody(["endcall"]);
        EndTag();
        ExpectBlockEnd();
        return new CallBlockNode(line, call, body);
    }

    /// <summary>An expression, or several separated by commas (a tuple, as a list).</summary>
    private Expr ParseTuple()
    {
        var first = ParseExpression();
        if (!Peek.Is(TokenKind.Operator, ",")) return first;
        var items = new List<Expr> { first };
        while (AcceptOp(",") && !Peek.Is(TokenKind.BlockEnd, "%}")) items.Add(ParseExpression());
        return new ListExpr(first.Line, items);
    }

    private Expr ParseExpression(bool allowConditional = true)
    {
        var value = ParseOr();
        if (!allowConditional) return value;
        while (Peek.Is(TokenKind.Name, "if"))
        {
            var line = Next().Line;
            var condition = ParseOr();
            value = new ConditionalExpr(line, condition, value, AcceptName("else") ? ParseExpression() : null);
        }
        return value;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.Is(TokenKind.Name, "or")) left = new BinaryExpr(Next().Line, "or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.Is(TokenKind.Name, "and")) left = new BinaryExpr(Next().Line, "and", left, ParseNot());
        return left;
    }

    private Expr ParseNot() =>
        Peek.Is(TokenKind.Name, "not") ? new UnaryExpr(Next().Line, "not", ParseNot()) : ParseCompare();

    /// <summary>Comparisons chain as in Python: <c>a &lt; b &lt; c</c> is <c>a &lt; b and b &lt; c</c>.</summary>
    private Expr ParseCompare()
    {
        var left = ParseAdditive();
        Expr? chain = null;
        while (true)
        {
            var token = Peek;
            string op;
            if (token.Kind == TokenKind.Operator && Comparisons.Contains(token.Value)) op = Next().Value;
            else if (token.Is(TokenKind.Name, "in")) op = Next().Value;
            else if (token.Is(TokenKind.Name, "not") && Peek2.Is(TokenKind.Name, "in"))
            {
                _index += 2;
                op = "not in";
            }
            else return chain ?? left;
            var right = ParseAdditive();
            var comparison = new BinaryExpr(token.Line, op, left, right);
            chain = chain is null ? comparison : new BinaryExpr(token.Line, "and", chain, comparison);
            left = right;
        }
    }

    private Expr ParseAdditive()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "+" or "-") left = new BinaryExpr(Peek.Line, Next().Value, left, ParseConcat());
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMultiplicative();
        while (Peek.Is(TokenKind.Operator, "~")) left = new BinaryExpr(Next().Line, "~", left, ParseMultiplicative());
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParsePower();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%") left = new BinaryExpr(Peek.Line, Next().Value, left, ParsePower());
        return left;
    }

    private Expr ParsePower()
    {
        var left = ParseUnary();
        while (Peek.Is(TokenKind.Operator, "**")) left = new BinaryExpr(Next().Line, "**", left, ParseUnary());
        return left;
    }

    /// <summary>As in Jinja, filters and tests apply to a negation: <c>-x|abs</c> is <c>(-x)|abs</c>.</summary>
    private Expr ParseUnary(bool withFilters = true)
    {
        var node = Peek.Kind == TokenKind.Operator && Peek.Value is "-" or "+"
            ? new UnaryExpr(Peek.Line, Next().Value, ParseUnary(withFilters: false))
            : ParsePostfix(ParsePrimary());
        return withFilters ? ParseFiltersAndTests(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(token.Line, true),
                    "false" or "False" => new LiteralExpr(token.Line, false),
                    "none" or "None" => new LiteralExpr(token.Line, null),
                    _ => new NameExpr(token.Line, token.Value),
                };
            case TokenKind.String:
                var text = token.Value;
                while (Peek.Kind == TokenKind.String) text += Next().Value;
                return new LiteralExpr(token.Line, text);
            case TokenKind.Integer:
                return new LiteralExpr(token.Line, long.Parse(token.Value, CultureInfo.InvariantCulture));
            case TokenKind.Float:
                return new LiteralExpr(token.Line, double.Parse(token.Value, CultureInfo.InvariantCulture));
            case TokenKind.Operator when token.Value == "(":
                if (AcceptOp(")")) return new ListExpr(token.Line, []);
                var inner = ParseExpression();
                if (AcceptOp(")")) return inner;
                var items = new List<Expr> { inner };
                while (AcceptOp(",") && !Peek.Is(TokenKind.Operator, ")")) items.Add(ParseExpression());
                Expect(TokenKind.Operator, ")", "')'");
                return new ListExpr(token.Line, items);
            case TokenKind.Operator when token.Value == "[":
                return new ListExpr(token.Line, ParseSequence("]"));
            case TokenKind.Operator when token.Value == "{":
                var entries = new List<(Expr, Expr)>();
                while (!AcceptOp("}"))
                {
                    if (entries.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",", "',' or '}'");
                        if (AcceptOp("}")) break;
                    }
                    var key = ParseExpression();
                    Expect(TokenKind.Operator, ":", "':'");
                    entries.Add((key, ParseExpression()));
                }
                return new DictExpr(token.Line, entries);
            default:
                throw new ChatTemplateException($"unexpected {token} in an expression", token.Line);
        }
    }

    private List<Expr> ParseSequence(string close)
    {
        var items = new List<Expr>();
        while (!AcceptOp(close))
        {
            if (items.Count > 0)
            {
                Expect(TokenKind.Operator, ",", $"',' or '{close}'");
                if (AcceptOp(close)) break;
            }
            items.Add(ParseExpression());
        }
        return items;
    }

    private Expr ParsePostfix(Expr target)
    {
        while (true)
        {
            var token = Peek;
            if (AcceptOp("."))
            {
                var name = Next();
                target = name.Kind switch
                {
                    TokenKind.Name => new AttributeExpr(token.Line, target, name.Value),
                    TokenKind.Integer => new ItemExpr(token.Line, target, new LiteralExpr(name.Line, long.Parse(name.Value, CultureInfo.InvariantCulture))),
                    _ => throw new ChatTemplateException($"expected an attribute name after '.', found {name}", name.Line),
                };
            }
            else if (AcceptOp("[")) target = ParseSubscript(target, token.Line);
            else if (AcceptOp("("))
            {
                var (args, kwargs) = ParseArguments();
                target = new CallExpr(token.Line, target, args, kwargs);
            }
            else return target;
        }
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        Expr? start = Peek.Is(TokenKind.Operator, ":") ? null : ParseExpression();
        if (start is not null && AcceptOp("]")) return new ItemExpr(line, target, start);
        Expect(TokenKind.Operator, ":", "':' or ']'");
        Expr? stop = Peek.Kind == TokenKind.Operator && Peek.Value is ":" or "]" ? null : ParseExpression();
        Expr? step = null;
        if (AcceptOp(":") && !Peek.Is(TokenKind.Operator, "]")) step = ParseExpression();
        Expect(TokenKind.Operator, "]", "']'");
        return new SliceExpr(line, target, start, stop, step);
    }

    /// <summary>Call arguments after '(' up to and including ')': positional, then <c>name=value</c>.</summary>
    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArguments()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!AcceptOp(")"))
        {
            if (args.Count + kwargs.Count > 0)
            {
                Expect(TokenKind.Operator, ",", "',' or ')'");
                if (AcceptOp(")")) break;
            }
            if (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "**") throw new ChatTemplateException("unsupported '*' or '**' argument unpacking", Peek.Line);
            if (Peek.Kind == TokenKind.Name && Peek2.Is(TokenKind.Operator, "="))
            {
                var name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else if (kwargs.Count > 0) throw new ChatTemplateException("positional argument after a keyword argument", Peek.Line);
            else args.Add(ParseExpression());
        }
        return (args, kwargs);
    }

    private Expr ParseFiltersAndTests(Expr target)
    {
        while (true)
        {
            var token = Peek;
            if (AcceptOp("|"))
            {
                var name = ExpectName("a filter name");
                var (args, kwargs) = AcceptOp("(") ? ParseArguments() : ([], []);
                target = new FilterExpr(token.Line, target, name, args, kwargs);
            }
            else if (AcceptName("is"))
            {
                var negated = AcceptName("not");
                var name = ExpectName("a test name");
                var args = new List<Expr>();
                if (AcceptOp("("))
                {
                    var (positional, kwargs) = ParseArguments();
                    if (kwargs.Count > 0) throw new ChatTemplateException($"unsupported keyword argument to test '{name}'", token.Line);
                    args = positional;
                }
                else if (StartsTestArgument(Peek)) args.Add(ParsePostfix(ParsePrimary()));
                target = new TestExpr(token.Line, target, name, args, negated);
            }
            else return target;
        }
    }

    /// <summary>Whether a test takes this token as its one argument without parentheses (<c>x is divisibleby 3</c>).</summary>
    private static bool StartsTestArgument(Token token) => token.Kind switch
    {
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Name => token.Value is not ("else" or "or" or "and" or "if" or "in" or "not" or "is"),
        TokenKind.Operator => token.Value is "[" or "{",
        _ => false,
    };
}
