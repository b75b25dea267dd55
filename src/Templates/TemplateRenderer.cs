using System.Text;

namespace Kangaroo.Native.Templates;

/// <summary>Variables visible at one point: a loop iteration or macro call opens a scope over its parent, so
/// <c>{% set %}</c> inside them does not leak out (hence <c>namespace()</c>), as in Jinja.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _variables = [];

    public object? Get(string name)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
            if (scope._variables.TryGetValue(name, out var value)) return value;
        return new Undefined(name);
    }

    public void Set(string name, object? value) => _variables[name] = value;

    private Scope? Parent => parent;
}

/// <summary>Executes parsed statements and evaluates expressions with Python's semantics.</summary>
internal sealed class TemplateRenderer
{
    private sealed class LoopControl(bool isBreak) : Exception
    {
        public bool IsBreak => isBreak;
    }

    public static string Render(List<Node> nodes, Scope globals)
    {
        var output = new StringBuilder();
        new TemplateRenderer().Execute(nodes, globals, output);
        return output.ToString();
    }

    private void Execute(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            try
            {
                Execute(node, scope, output);
            }
            catch (ChatTemplateException e) when (e.Line is null && e is not ChatTemplateRaisedException)
            {
                throw e.AtLine(node.Line);
            }
        }
    }

    private void Execute(Node node, Scope scope, StringBuilder output)
    {
        switch (node)
        {
            case TextNode text: output.Append(text.Text); break;
            case OutputNode o: output.Append(TemplateValues.ToText(Evaluate(o.Value, scope))); break;
            case IfNode conditional:
                var branch = conditional.Branches.FirstOrDefault(b => TemplateValues.IsTrue(Evaluate(b.Condition, scope))).Body ?? conditional.Else;
                Execute(branch, scope, output);
                break;
            case ForNode loop: ExecuteFor(loop, scope, output); break;
            case SetNode set: ExecuteSet(set, scope); break;
            case SetBlockNode block:
                var captured = new StringBuilder();
                Execute(block.Body, scope, captured);
                scope.Set(block.Target, captured.ToString());
                break;
            case MacroNode macro: scope.Set(macro.Name, DefineMacro(macro.Name, macro.Parameters, macro.Body, scope)); break;
            case CallBlockNode call:
                var caller = DefineMacro("caller", [], call.Body, scope);
                var invocation = call.Call with { Kwargs = [.. call.Call.Kwargs, ("caller", new LiteralExpr(call.Line, caller))] };
                output.Append(TemplateValues.ToText(Evaluate(invocation, scope)));
                break;
            case LoopControlNode control: throw new LoopControl(control.IsBreak);
        }
    }

    private void ExecuteFor(ForNode loop, Scope scope, StringBuilder output)
    {
        var items = TemplateValues.Iterate(Evaluate(loop.Iterable, scope));
        if (loop.Filter is not null)
        {
            items = items.Where(item =>
            {
                var filterScope = new Scope(scope);
                Bind(loop.Targets, item, filterScope);
                return TemplateValues.IsTrue(Evaluate(loop.Filter, filterScope));
            }).ToList();
        }
        for (var i = 0; i < items.Count; i++)
        {
            var iteration = new Scope(scope);
            Bind(loop.Targets, items[i], iteration);
            var index = i;
            var variables = TemplateValues.ToMap([
                ("index", (long)i + 1), ("index0", (long)i), ("revindex", (long)(items.Count - i)), ("revindex0", (long)(items.Count - i - 1)),
                ("first", i == 0), ("last", i == items.Count - 1), ("length", (long)items.Count),
                ("cycle", new FunctionValue("loop.cycle", args => args.Positional.Count == 0 ? new Undefined("loop.cycle") : args.Positional[index % args.Positional.Count])),
            ]);
            if (i > 0) variables["previtem"] = items[i - 1];
            if (i + 1 < items.Count) variables["nextitem"] = items[i + 1];
            iteration.Set("loop", variables);
            try
            {
                Execute(loop.Body, iteration, output);
            }
            catch (LoopControl control)
            {
                if (control.IsBreak) break;
            }
        }
        if (items.Count == 0) Execute(loop.Else, scope, output);
    }

    private static void Bind(List<string> targets, object? item, Scope scope)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], item);
            return;
        }
        if (item is not List<object?> values || values.Count != targets.Count)
            throw new ChatTemplateException($"cannot unpack {TemplateValues.TypeName(item)} into {targets.Count} variables ({string.Join(", ", targets)})");
        for (var i = 0; i < targets.Count; i++) scope.Set(targets[i], values[i]);
    }

    private void ExecuteSet(SetNode set, Scope scope)
    {
        var value = Evaluate(set.Value, scope);
        if (set.Attribute is null)
        {
            Bind(set.Targets, value, scope);
            return;
        }
        if (scope.Get(set.Targets[0]) is not Namespace ns)
            throw new ChatTemplateException($"cannot set attribute '{set.Attribute}' of '{set.Targets[0]}': only a namespace() takes assignments");
        ns.Attributes[set.Attribute] = value;
    }

    private FunctionValue DefineMacro(string name, List<(string Name, Expr? Default)> parameters, List<Node> body, Scope definition) =>
        new(name, args =>
        {
            if (args.Positional.Count > parameters.Count) throw new ChatTemplateException($"macro '{name}' takes {parameters.Count} arguments, got {args.Positional.Count}");
            var scope = new Scope(definition);
            for (var i = 0; i < parameters.Count; i++)
            {
                var (parameter, fallback) = parameters[i];
                scope.Set(parameter, args.Has(i, parameter) ? args.Get(i, parameter) : fallback is null ? new Undefined(parameter) : Evaluate(fallback, definition));
            }
            foreach (var (key, value) in args.Named)
            {
                if (key == "caller") scope.Set(key, value);
                else if (parameters.All(p => p.Name != key)) throw new ChatTemplateException($"macro '{name}' has no parameter '{key}'");
            }
            var output = new StringBuilder();
            Execute(body, scope, output);
            return output.ToString();
        });

    private object? Evaluate(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case LiteralExpr literal: return literal.Value;
            case NameExpr name: return scope.Get(name.Name);
            case ListExpr list: return list.Items.Select(item => Evaluate(item, scope)).ToList();
            case DictExpr dict:
                return TemplateValues.ToMap(dict.Entries.Select(e => (Evaluate(e.Key, scope) is string key ? key
                    : throw new ChatTemplateException("a dict literal's keys must be strings"), Evaluate(e.Value, scope))));
            case AttributeExpr attribute: return TemplateFilters.GetAttribute(Evaluate(attribute.Target, scope), attribute.Name);
            case ItemExpr item: return TemplateFilters.GetItem(Evaluate(item.Target, scope), Evaluate(item.Index, scope));
            case SliceExpr slice:
                return TemplateFilters.Slice(Evaluate(slice.Target, scope), Optional(slice.Start, scope), Optional(slice.Stop, scope), Optional(slice.Step, scope));
            case CallExpr call: return EvaluateCall(call, scope);
            case FilterExpr filter: return TemplateFilters.Filter(filter.Name, Evaluate(filter.Target, scope), EvaluateArguments(filter.Args, filter.Kwargs, scope));
            case TestExpr test:
                var passed = TemplateFilters.Test(test.Name, Evaluate(test.Target, scope), test.Args.Select(a => Evaluate(a, scope)).ToList());
                return passed != test.Negated;
            case UnaryExpr unary:
                var operand = Evaluate(unary.Operand, scope);
                return unary.Operator switch
                {
                    "not" => !TemplateValues.IsTrue(operand),
                    "-" => operand is long l ? (object)(-l) : operand is double or bool ? -TemplateValues.ToDouble(operand) : throw new ChatTemplateException($"cannot negate {TemplateValues.TypeName(operand)}"),
                    _ => TemplateValues.IsNumber(operand) ? operand : throw new ChatTemplateException($"unary '+' on {TemplateValues.TypeName(operand)}"),
                };
            case BinaryExpr binary: return EvaluateBinary(binary, scope);
            case ConditionalExpr conditional:
                return TemplateValues.IsTrue(Evaluate(conditional.Condition, scope)) ? Evaluate(conditional.Then, scope)
                    : conditional.Else is null ? new Undefined("else") : Evaluate(conditional.Else, scope);
            default: throw new ChatTemplateException($"unsupported expression {expr.GetType().Name}");
        }
    }

    private long? Optional(Expr? expr, Scope scope) => expr is null ? null : Evaluate(expr, scope) switch
    {
        long l => l,
        null => null,
        var other => throw new ChatTemplateException($"slice bounds must be integers, got {TemplateValues.TypeName(other)}"),
    };

    private Arguments EvaluateArguments(List<Expr> args, List<(string Name, Expr Value)> kwargs, Scope scope) =>
        new(args.Select(a => Evaluate(a, scope)).ToList(), kwargs.Select(k => (k.Name, Evaluate(k.Value, scope))).ToList());

    private object? EvaluateCall(CallExpr call, Scope scope)
    {
        var args = EvaluateArguments(call.Args, call.Kwargs, scope);
        if (call.Callee is AttributeExpr method)
        {
            var target = Evaluate(method.Target, scope);
            if (TemplateMethods.TryCall(target, method.Name, args, out var result)) return result;
            return TemplateFilters.GetAttribute(target, method.Name) is FunctionValue function ? function.Invoke(args)
                : throw new ChatTemplateException($"{TemplateValues.TypeName(target)} has no method '{method.Name}()'");
        }
        var callee = Evaluate(call.Callee, scope);
        return Invoke(callee, args, call.Callee is NameExpr name ? name.Name : "expression");
    }

    private static object? Invoke(object? callee, Arguments args, string name) => callee switch
    {
        FunctionValue function => function.Invoke(args),
        Undefined => throw new ChatTemplateException($"unsupported function '{name}' (it is not defined)"),
        _ => throw new ChatTemplateException($"'{name}' is a {TemplateValues.TypeName(callee)}, not a function"),
    };

    private object? EvaluateBinary(BinaryExpr binary, Scope scope)
    {
        var left = Evaluate(binary.Left, scope);
        switch (binary.Operator)
        {
            case "and": return TemplateValues.IsTrue(left) ? Evaluate(binary.Right, scope) : left;
            case "or": return TemplateValues.IsTrue(left) ? left : Evaluate(binary.Right, scope);
        }
        var right = Evaluate(binary.Right, scope);
        return binary.Operator switch
        {
            "==" => TemplateValues.AreEqual(left, right),
            "!=" => !TemplateValues.AreEqual(left, right),
            "<" => TemplateValues.Compare(left, right) < 0,
            "<=" => TemplateValues.Compare(left, right) <= 0,
            ">" => TemplateValues.Compare(left, right) > 0,
            ">=" => TemplateValues.Compare(left, right) >= 0,
            "in" => TemplateFilters.Contains(right, left),
            "not in" => !TemplateFilters.Contains(right, left),
            "~" => TemplateValues.ToText(left) + TemplateValues.ToText(right),
            _ => TemplateValues.Arithmetic(binary.Operator, left, right),
        };
    }
}
