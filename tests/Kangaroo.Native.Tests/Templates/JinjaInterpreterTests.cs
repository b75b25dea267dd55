using System.Text.Json;
using Kangaroo.Native.Templates;

namespace Kangaroo.Native.Tests.Templates;

/// <summary>The interpreter on small constructs. Expected texts come from Python's jinja2 3.1.6 configured as
/// transformers configures it (sandboxed, trim_blocks, lstrip_blocks, loop controls, its tojson), checked
/// against @huggingface/jinja where the two agree.</summary>
public sealed class JinjaInterpreterTests
{
    public static TheoryData<string, string, string, string> Constructs => new()
    {
        { "sort", "{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ['b', 'A', 'c'] | sort(case_sensitive=true) }}|{{ items | sort(attribute='n') | map(attribute='k') | join(',') }}", "{\"items\": [{\"k\": \"x\", \"n\": 2}, {\"k\": \"y\", \"n\": 1}]}", "['A', 'b', 'c']|[3, 2, 1]|['A', 'b', 'c']|y,x" },
        { "dictsort", "{% for k, v in {'b': 1, 'A': 2, 'c': 0} | dictsort %}{{ k }}{{ v }}{% endfor %}|{% for k, v in {'b': 1, 'a': 2} | dictsort(by='value') %}{{ k }}{% endfor %}", "{}", "A2b1c0|ba" },
        { "unique_sum_min_max", "{{ ['a', 'A', 'b', 'a'] | unique | list }}|{{ [1, 2, 3] | sum }}|{{ items | sum(attribute='n') }}|{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}|{{ ['b', 'A'] | min }}", "{\"items\": [{\"k\": \"x\", \"n\": 2}, {\"k\": \"y\", \"n\": 1}]}", "['a', 'b']|6|3|13|A" },
        { "stable_ties", "{{ ['a', 'A'] | max }}{{ ['a', 'A'] | min }}|{{ [2, 1, 2.0] | sort(reverse=true) }}|{{ [] | max is defined }}", "{}", "aa|[2, 2.0, 1]|False" },
        { "none_and_missing_keys", "{{ none.foo }}|{{ {'a': 1}[0] }}|{{ none['x'] is defined }}", "{}", "||False" },
        { "ws_dash_both", "a  {%- if true -%}  b  {%- endif -%}  c", "{}", "abc" },
        { "ws_expr_dash", "x \n {{- 'y' -}} \n z", "{}", "xyz" },
        { "trim_blocks", "{% if true %}\nyes\n{% endif %}\nend", "{}", "yes\nend" },
        { "lstrip_blocks", "line\n    {% if true %}\n    inner\n    {% endif %}\ndone", "{}", "line\n    inner\ndone" },
        { "lstrip_not_expr", "  {{ 'e' }}\n  {% if true %}x{% endif %}", "{}", "  e\nx" },
        { "comment", "a {# note #}\nb{#- strip -#}  c", "{}", "a bc" },
        { "plus_disables_lstrip", "  {%+ if true %}x{% endif %}", "{}", "  x" },
        { "dict_literal_in_expr", "{{ {'a': {'b': 1}}['a']['b'] }}{{ {'x': [1, {'y': 2}]}.x[1].y }}", "{}", "12" },
        { "filter_precedence", "{{ 'a' + ' b ' | trim + 'c' }}|{{ [1, 2] | length + 1 }}|{{ 'x' ~ [1, 2] | length }}", "{}", "abc|3|x2" },
        { "loop_vars", "{% for x in ['a','b','c'] %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}", "{}", "01TrueFalse33 12FalseFalse32 23FalseTrue31 " },
        { "loop_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ',' if not loop.last }}{% endfor %}", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"  Hi there  \"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}", "1:user,2:assistant" },
        { "loop_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", "{}", "empty" },
        { "loop_unpack_items", "{% for k, v in {'a': 1, 'b': [2, 3]}.items() %}{{ k }}={{ v }};{% endfor %}", "{}", "a=1;b=[2, 3];" },
        { "loop_scope", "{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{% endfor %}{{ x }}", "{}", "1" },
        { "namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "{}", "6" },
        { "set_block", "{% set block %}  hi {{ 1 + 1 }}  {% endset %}[{{ block }}]", "{}", "[  hi 2  ]" },
        { "macro_defaults", "{% macro f(a, b='B') %}<{{ a }}{{ b }}>{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}{{ f('x', 'y') }}", "{}", "<1B><23><xy>" },
        { "macro_call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall %}", "{}", "<b>bold</b>" },
        { "slicing", "{{ [1,2,3,4,5][1:3] }}{{ 'hello'[::-1] }}{{ [1,2,3][-1] }}{{ 'abcdef'[2:] }}{{ [1,2,3,4][:-1] }}{{ [0,1,2,3,4,5][::2] }}", "{}", "[2, 3]olleh3cdef[1, 2, 3][0, 2, 4]" },
        { "arithmetic", "{{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 4 / 2 }} {{ 1.5 + 1 }}", "{}", "3 1 -4 2 3.5 1024 7 9 2.0 2.5" },
        { "concat_tilde", "{{ 'a' ~ 1 ~ none ~ true }}|{{ 'n' ~ undefined_thing ~ 'm' }}", "{}", "a1NoneTrue|nm" },
        { "string_plus", "{{ 'ab' + 'cd' }}{{ [1] + [2] }}{{ 'x' * 3 }}", "{}", "abcd[1, 2]xxx" },
        { "in_notin", "{{ 'ell' in 'hello' }}{{ 2 in [1,2] }}{{ 'a' in {'a': 1} }}{{ 3 not in [1,2] }}{{ 'z' in undefined_thing }}", "{}", "TrueTrueTrueTrueFalse" },
        { "tests", "{{ x is defined }}{{ y is defined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is mapping }}{{ 3 is number }}{{ 3 is integer }}{{ 3.0 is float }}{{ true is boolean }}{{ x is not none }}{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ [] is iterable }}", "{\"x\": 1}", "TrueFalseTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue" },
        { "comparisons", "{{ 1 < 2 }}{{ 2 <= 2 }}{{ 'b' > 'a' }}{{ 1 == 1.0 }}{{ 1 != 2 }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 4 }}", "{}", "TrueTrueTrueTrueTrueTrueFalse" },
        { "boolean_logic", "{{ true and 'x' }}|{{ false or 'y' }}|{{ not 0 }}|{{ '' or [] or 'z' }}|{{ none and 1 }}", "{}", "x|y|True|z|None" },
        { "ternary", "{{ 'yes' if 1 else 'no' }}{{ 'yes' if 0 else 'no' }}[{{ 'only' if false }}]", "{}", "yesno[]" },
        { "literals", "{{ [1, 'a', none, true, 2.5] }}{{ {'k': 'v', 'n': 1} }}{{ (1, 2) | length }}", "{}", "[1, 'a', None, True, 2.5]{'k': 'v', 'n': 1}2" },
        { "str_methods", "{{ '  a b  '.strip() }}|{{ 'x,y,,z'.split(',') }}|{{ ' a  b '.split() }}|{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('x','lo')) }}|{{ 'AbC'.upper() }}{{ 'AbC'.lower() }}|{{ 'a-b-c'.replace('-', '+') }}|{{ 'hello world'.title() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a b c'.split(' ', 1) }}|{{ '  r  '.lstrip() }}.{{ '  r  '.rstrip() }}.", "{}", "a b|['x', 'y', '', 'z']|['a', 'b']|TrueTrue|ABCabc|a+b+c|Hello World|hi|['a', 'b c']|r  .  r." },
        { "dict_methods", "{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 'dflt') }}{{ d.keys() | list }}{{ d.values() | list }}{{ d['b'] }}{{ d.b }}", "{}", "1Nonedflt['a', 'b'][1, 2]22" },
        { "filters_text", "{{ '  t  ' | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'a-b' | replace('-', '_') }}|{{ 42 | string }}|{{ '12' | int + 1 }}|{{ 3.9 | int }}|{{ 'x' | int }}|{{ [3,1,2] | length }}|{{ 'h\u00e9llo' | length }}", "{}", "t|ABC|abc|Hello world|a_b|42|13|3|0|3|5" },
        { "filters_seq", "{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ ['a','b'] | join('-') }}{{ 'abc' | list }}{{ [1,2] | reverse | list }}{% for k, v in {'a': 1} | items %}{{ k }}{{ v }}{% endfor %}", "{}", "13a-b['a', 'b', 'c'][2, 1]a1" },
        { "filter_default", "{{ missing | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | default('d') }}|{{ 0 | d('z', boolean=true) }}", "{}", "d||d|None|z" },
        { "selectattr_map", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}|{{ messages | rejectattr('role', 'eq', 'system') | map(attribute='role') | join(',') }}|{{ messages | map(attribute='role') | map('upper') | join(' ') }}|{{ [0, 1, '', 'a'] | select | list }}", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"  Hi there  \"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}", "['  Hi there  ']|user,assistant|SYSTEM USER ASSISTANT|[1, 'a']" },
        { "selectattr_defined", "{{ items | selectattr('tool_calls', 'defined') | list | length }}{{ items | selectattr('x') | list }}", "{\"items\": [{\"tool_calls\": [1]}, {\"x\": 0}, {\"x\": 2}]}", "1[{'x': 2}]" },
        { "tojson", "{{ {'a': [1, 2.5, true, none], 'b': '\u00e9\"\\n<&>', 'c': {}} | tojson }}", "{}", "{\"a\": [1, 2.5, true, null], \"b\": \"\u00e9\\\"\\n<&>\", \"c\": {}}" },
        { "tojson_indent", "{{ {'a': [1, 2], 'b': {'c': 'd'}, 'e': []} | tojson(indent=2) }}", "{}", "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {\n    \"c\": \"d\"\n  },\n  \"e\": []\n}" },
        { "indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(4, true) }}|{{ 'x\\n\\ny' | indent(2, blank=true) }}", "{}", "a\n  b\n\n  c|    a\n    b|x\n  \n  y" },
        { "escapes", "{{ 'tab\\there' }}|{{ \"dq 'q'\" }}|{{ 'it\\'s' }}|{{ 'u\\u00e9' }}", "{}", "tab\there|dq 'q'|it's|u\u00e9" },
        { "none_print", "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e3 if false else 100.0 }}", "{}", "None|True|False|1.0|0.30000000000000004|100.0" },
        { "messages_attr", "{% for m in messages %}{{ m['role'][0] | upper }}{{ m.content | trim }};{% endfor %}", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"  Hi there  \"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}", "SBe brief.;UHi there;AHello!;" },
        { "break_continue", "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "{}", "023" },
        { "elif_chain", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", "{}", "one two many " },
        { "set_tuple", "{% set a, b = [1, 2] %}{{ b }}{{ a }}", "{}", "21" },
        { "unary_filter", "{{ -3 | abs }}{{ - 2 + 5 }}", "{}", "33" },
        { "nested_for_loop_vars", "{% for a in [1,2] %}{% for b in ['x','y'] %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }}|{% endfor %}", "{}", "1x2y1|1x2y2|" },
        { "string_compare_concat", "{{ messages[0].content + ' / ' + messages[-1]['content'] }}", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"  Hi there  \"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}", "Be brief. / Hello!" },
    };

    [Theory]
    [MemberData(nameof(Constructs))]
    public void RendersAsJinja(string name, string template, string variablesJson, string expected)
    {
        var variables = JsonDocument.Parse(variablesJson).RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        Assert.Equal(expected, ChatTemplate.Parse(template).Render(variables));
        Assert.NotEmpty(name);
    }

    [Fact]
    public void RaiseExceptionCarriesTheTemplatesMessage()
    {
        var template = ChatTemplate.Parse("{% if messages | length == 0 %}{{ raise_exception('need at least one message') }}{% endif %}");
        var error = Assert.Throws<ChatTemplateRaisedException>(() => template.Render([]));
        Assert.Equal("need at least one message", error.Message);
    }

    [Theory]
    [InlineData("a\n{% filter upper %}x{% endfilter %}", "chat template line 2: unsupported statement '{% filter %}'")]
    [InlineData("{{ 'x' | wordwrap }}", "chat template line 1: unsupported filter 'wordwrap'")]
    [InlineData("\n\n{% if x is prime %}{% endif %}", "chat template line 3: unsupported test 'prime'")]
    [InlineData("{{ 'a'.zfill(3) }}", "chat template line 1: unsupported string method 'zfill()'")]
    [InlineData("{{ none.strip() }}", "chat template line 1: none has no method 'strip()'")]
    [InlineData("{{ lipsum() }}", "chat template line 1: unsupported function 'lipsum' (it is not defined)")]
    [InlineData("{% for x in y recursive %}{% endfor %}", "chat template line 1: unsupported 'recursive' loop")]
    [InlineData("{% for x in y %}", "chat template line 1: missing '{% endfor %}' before the end of the template")]
    [InlineData("{{ 1 + }}", "chat template line 1: unexpected '}}' in an expression")]
    [InlineData("{% endif %}", "chat template line 1: unexpected '{% endif %}'")]
    public void ConstructsOutsideTheSubsetAreNamedWithTheirLine(string template, string message)
    {
        var error = Assert.ThrowsAny<ChatTemplateException>(() => ChatTemplate.Parse(template).Render([]));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void MessagesMayBeAnyDictionaries()
    {
        var template = ChatTemplate.Parse("{% for m in messages %}{{ m.role }}:{{ m['content'] }}{{ m.n is defined }};{% endfor %}");
        object?[] messages = [new Dictionary<string, string> { ["role"] = "user", ["content"] = "hi" }, new Dictionary<string, object?> { ["role"] = "tool", ["content"] = null, ["n"] = 3 }];
        Assert.Equal("user:hiFalse;tool:NoneTrue;", template.Render(messages));
    }

    [Fact]
    public void ToolsAreUndefinedUnlessGiven()
    {
        var template = ChatTemplate.Parse("{{ tools is defined }} {{ tools | tojson if tools is defined else '-' }}");
        Assert.Equal("False -", template.Render([]));
        Assert.Equal("True [{\"name\": \"f\"}]", template.Render([], tools: [new Dictionary<string, object?> { ["name"] = "f" }]));
    }

    /// <summary>A whole template mixing the constructs (namespace accumulation in a loop, items() of a tool, a macro with
    /// a default, a filtered loop with loop.length, slicing, select/map chains, title, replace, ** and //) over a
    /// conversation with a tool call; the expected text is jinja2's.</summary>
    [Fact]
    public void AWholeTemplateRendersAsJinja2()
    {
        const string template = """
        {# exercise odd corners #}
        {%- set ns = namespace(items=[], total=0) -%}
        {% for m in messages %}
          {%- set ns.items = ns.items + [m.role | upper] -%}
          {%- set ns.total = ns.total + (m.content | default('') | length) -%}
        {% endfor %}
        Roles: {{ ns.items | join(', ') }} total={{ ns.total }}
        {% for k, v in (tools[0] if tools else {'none': 1}).items() -%}
          {{ k }}: {{ v | tojson }}
        {% endfor -%}
        {%- macro row(m, sep=' | ') -%}
        {{ m.role }}{{ sep }}{{ (m.content or '')[:10] ~ ('...' if (m.content or '') | length > 10 else '') }}
        {%- endmacro %}
        {% for m in messages if m.content is string %}
            {{ loop.index }}/{{ loop.length }} {{ row(m) }}{% if not loop.last %},{% endif %}

        {% endfor %}
        {{ messages | map(attribute='role') | select('equalto', 'user') | list | length }} {{ (messages | last).content | trim | title }}
        {{ "%d items" | replace("%d", messages | length | string) }} {{ messages[1:3] | map(attribute='role') | join('+') }} {{ 10 // 3 }} {{ 2 ** 3 ** 2 }}
        """;
        const string messages = """
        [{"role": "system", "content": "You are helpful.\n"}, {"role": "user", "content": "Weather in Zürich?"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}]}, {"role": "tool", "content": "{\"temp\": 21}"}, {"role": "assistant", "content": "It is 21 °C."}, {"role": "user", "content": "Thanks"}]
        """;
        const string tools = """
        [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city, «today»", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 3}, "ratio": {"type": "number", "default": 0.5}}, "required": ["city"]}}}]
        """;
        const string expected = """
        Roles: SYSTEM, USER, ASSISTANT, TOOL, ASSISTANT, USER total=65
        type: "function"
        function: {"name": "get_weather", "description": "Weather in a city, «today»", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 3}, "ratio": {"type": "number", "default": 0.5}}, "required": ["city"]}}
            1/5 system | You are he...,
            2/5 user | Weather in...,
            3/5 tool | {"temp": 2...,
            4/5 assistant | It is 21 °...,
            5/5 user | Thanks
        2 Thanks
        6 items user+assistant 3 64
        """;
        var rendered = ChatTemplate.Parse(template + "\n").Render(
            JsonDocument.Parse(messages).RootElement.EnumerateArray().Cast<object?>(), addGenerationPrompt: true,
            JsonDocument.Parse(tools).RootElement.EnumerateArray().Cast<object?>());
        Assert.Equal(expected, rendered);
    }
}
