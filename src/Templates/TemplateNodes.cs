namespace Kangaroo.Native.Templates;

/// <summary>A statement of a parsed template; <see cref="Line"/> locates errors.</summary>
internal abstract record Node(int Line);

internal sealed record TextNode(int Line, string Text) : Node(Line);

internal sealed record OutputNode(int Line, Expr Value) : Node(Line);

internal sealed record IfNode(int Line, List<(Expr Condition, List<Node> Body)> Branches, List<Node> Else) : Node(Line);

internal sealed record ForNode(int Line, List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node> Else) : Node(Line);

/// <summary><c>{% set name = value %}</c>, <c>{% set a, b = value %}</c> or <c>{% set ns.attr = value %}</c>.</summary>
internal sealed record SetNode(int Line, List<string> Targets, string? Attribute, Expr Value) : Node(Line);

/// <summary><c>{% set name %}body{% endset %}</c>.</summary>
internal sealed record SetBlockNode(int Line, string Target, List<Node> Body) : Node(Line);

internal sealed record MacroNode(int Line, string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body) : Node(Line);

/// <summary><c>{% call macro(args) %}body{% endcall %}</c>: the body is the macro's <c>caller()</c>.</summary>
internal sealed record CallBlockNode(int Line, CallExpr Call, List<Node> Body) : Node(Line);

internal sealed record LoopControlNode(int Line, bool IsBreak) : Node(Line);

/// <summary>An expression; <see cref="Line"/> locates errors.</summary>
internal abstract record Expr(int Line);

internal sealed record LiteralExpr(int Line, object? Value) : Expr(Line);

internal sealed record NameExpr(int Line, string Name) : Expr(Line);

internal sealed record ListExpr(int Line, List<Expr> Items) : Expr(Line);

internal sealed record DictExpr(int Line, List<(Expr Key, Expr Value)> Entries) : Expr(Line);

internal sealed record AttributeExpr(int Line, Expr Target, string Name) : Expr(Line);

internal sealed record ItemExpr(int Line, Expr Target, Expr Index) : Expr(Line);

internal sealed record SliceExpr(int Line, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Line);

internal sealed record CallExpr(int Line, Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Line);

internal sealed record FilterExpr(int Line, Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Line);

internal sealed record TestExpr(int Line, Expr Target, string Name, List<Expr> Args, bool Negated) : Expr(Line);

internal sealed record UnaryExpr(int Line, string Operator, Expr Operand) : Expr(Line);

internal sealed record BinaryExpr(int Line, string Operator, Expr Left, Expr Right) : Expr(Line);

internal sealed record ConditionalExpr(int Line, Expr Condition, Expr Then, Expr? Else) : Expr(Line);
