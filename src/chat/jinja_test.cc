// Unit tests of the Jinja subset: each expectation was derived by hand and
// cross-checked against Python jinja2 3.1 configured as transformers does.
#include <gtest/gtest.h>

#include <string>

#include "chat/jinja.h"
#include "huginn/error.h"

namespace huginn::jinja {
namespace {

using ojson = nlohmann::ordered_json;

ojson default_vars() {
  return ojson{{"messages", ojson::array({ojson{{"role", "user"}, {"content", "hi"}},
                                          ojson{{"role", "assistant"}, {"content", "yo"}}})},
               {"bos_token", "<s>"}};
}

std::string render(const std::string& t, const ojson& vars = default_vars(), Limits lim = {}) {
  return Template(t, lim).render(vars);
}

std::string error_of(const std::string& t, const ojson& vars = default_vars(), Limits lim = {}) {
  try {
    render(t, vars, lim);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

struct Case {
  const char* tmpl;
  const char* expected;
};

void check(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tmpl);
    try {
      EXPECT_EQ(render(c.tmpl), c.expected);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

TEST(Jinja, TextAndOutput) {
  check({{"plain text", "plain text"},
         {"{{ 'a' }}{{ \"b\" }}", "ab"},
         {"{{ bos_token }}x", "<s>x"},
         {"{{ undefined_var }}|", "|"},
         {"{{ true }}{{ True }}{{ none }}{{ None }}{{ false }}", "TrueTrueNoneNoneFalse"},
         {"{{ 1.0 }} {{ 1e16 }} {{ 0.0001 }} {{ 1.5e-5 }} {{ 3.14 }} {{ -0.0 }}", "1.0 1e+16 0.0001 1.5e-05 3.14 -0.0"},
         {"{{ [1,'a',none,true,{'k':(1,2)}] }}", "[1, 'a', None, True, {'k': (1, 2)}]"},
         {"{{ 'a' 'b' }}{{ (1,) }}{{ () }}{{ [1, 2,] }}{{ {'a': 1,} }}", "ab(1,)()[1, 2]{'a': 1}"},
         {"{{ \"it's\" }}{{ ['it\\'s'] }}", "it's[\"it's\"]"}});
}

TEST(Jinja, StringEscapes) {
  check({{"{{ '\\x41\\u00e9\\d\\'\\n\\t' }}", "A\xC3\xA9\\d'\n\t"}, {"{{ \"\\\"q\\\"\" }}", "\"q\""}});
}

TEST(Jinja, Comments) { check({{"a{# comment {{ x }} #}b", "ab"}, {"a {# c #}\nb\n  {# d #}\nc", "a b\nc"}}); }

TEST(Jinja, TrimBlocksAndLstripBlocks) {
  check({{"  {% if true %}\n  x\n  {% endif %}\n", "  x\n"},
         {"{{ 'x' }}\n  {% if 1 %}y{% endif %}", "x\ny"},
         {"{% if 1 %}  \n  {% endif %}z", "  \nz"},
         {"x\n\n", "x\n"},  // one trailing newline removed (keep_trailing_newline=False)
         {"{%+ if 1 %}\n{% endif +%}\nq", "\nq"},
         {"a\n  {#+ c #}b", "a\n  b"},
         {"a\r\nb\rc", "a\nb\nc"}});
}

TEST(Jinja, WhitespaceControl) {
  check({{" \t{% if 1 -%}  \n  a  {%- endif %}|", "a|"},
         {"x  {{- 'a' -}}  \n y", "xay"},
         {"{%- if true -%}\n  X\n{%- endif -%}\n\n", "X"},
         {"{# a -#}\n  x{#- b #}\ny", "xy"}});
}

TEST(Jinja, Raw) {
  check({{"{% raw %}\nA{{ x }}\n  {% endraw %}\nB", "\nA{{ x }}\nB"}, {"{% raw -%}\n  A  \n  {%- endraw %}|", "A|"}});
}

TEST(Jinja, IfElifElse) {
  check({{"{% if messages[0].role == 'user' and not (messages|length > 5) %}ok{% elif false %}no{% else %}e{% endif %}",
          "ok"},
         {"{% if false %}a{% elif true %}b{% endif %}{% if false %}a{% elif false %}b{% else %}c{% endif %}", "bc"},
         {"{% if undefined_var %}a{% else %}b{% endif %}", "b"},
         {"{% if add_generation_prompt is defined and add_generation_prompt %}g{% endif %}|", "|"}});
}

TEST(Jinja, ForLoop) {
  check({{"{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
          "{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}",
          "10TrueFalse221;21FalseTrue210;"},
         {"{% for a in [] %}x{% else %}empty{% endfor %}", "empty"},
         {"{% for a in [1,2,3,4] if a is even %}{{ loop.index }}/{{ loop.length }}{{ 'F' if loop.first }}"
          "{{ 'L' if loop.last }} {% endfor %}",
          "1/2F 2/2L "},
         {"{% for k, v in {'a':1,'b':2}.items() %}{{k}}={{v}};{% endfor %}", "a=1;b=2;"},
         {"{% for k in {'a':1,'b':2} %}{{k}}{% endfor %}{% for c in 'h\xC3\xA9' %}[{{c}}]{% endfor %}", "ab[h][\xC3\xA9]"},
         {"{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}",
          "a2;b13;a2;"},
         {"{% for i in range(10) %}{% if i == 3 %}{% continue %}{% endif %}{% if i == 6 %}{% break %}{% endif %}{{ i }}"
          "{% endfor %}",
          "01245"},
         {"{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}"
          "{{ range(5, 0, -2)|list }}",
          "012147[5, 3, 1]"},
         {"{% for m in messages %}{{ m.role }}{% if not loop.last %}, {% endif %}{% endfor %}", "user, assistant"},
         {"{% for x in undefined_var %}x{% endfor %}|", "|"}});
}

TEST(Jinja, Scoping) {
  check({// a set inside a loop body does not survive the iteration
         {"{% set x = 1 %}{% for i in [1,2,3] %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}",
          "111,111,111,1"},
         {"{% if true %}{% set y = 3 %}{% endif %}{{ y }}", "3"},
         {"{% for m in messages %}{% set z = m.role %}{% endfor %}[{{ z }}]", "[]"},
         {"{% with a = 5 %}{{ a }}{% endwith %}[{{ a }}]", "5[]"}});
}

TEST(Jinja, SetAndNamespace) {
  check({{"{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", "12(1, 2)"},
         {"{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
          "{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}{{ ns.n }}",
          "True2"},
         {"{% set x %}\n  hi {{ 1 }}\n{% endset %}[{{ x }}]", "[  hi 1\n]"},
         {"{% set x | upper %}abc{% endset %}{{ x }}", "ABC"}});
}

TEST(Jinja, Macros) {
  check({{"{% macro f(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ f(1) }} {{ f(1, b=3) }} {{ f(b=5, a=0) }} [{{ f() }}]",
          "1-2 1-3 0-5 [-2]"},
         {"{% macro f(a) %}<{{ caller() }}{{ a }}>{% endmacro %}{% call f(1) %}body{% endcall %}", "<body1>"},
         {"{% macro f(a) %}<{{ caller(a*2) }}>{% endmacro %}{% call(x) f(1) %}body{{ x }}{% endcall %}", "<body2>"},
         {"{% set g = 'G' %}{% macro f() %}{{ g }}{% endmacro %}{{ f() }}", "G"},
         {"{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", "321"}});
}

TEST(Jinja, Operators) {
  check({{"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 'ab' * 3 }}",
          "3 -4 2 3.5 1024 0.5 ababab"},
         {"{{ 1 + 2 * 3 - 4 / 2 }}{{ 2 ** 3 ** 2 }}{{ -2 ** 2 }}", "5.0644"},
         {"{{ 'a' ~ 1 ~ none ~ undefined_var }}{{ 'a' + 'b' }}{{ [1,2] + [3] }}", "a1Noneab[1, 2, 3]"},
         {"{{ 1 < 2 }}{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 1 != 2 }}{{ 2 >= 3 }}",
          "TrueTrueTrueTrueTrueTrueFalse"},
         {"{{ not 1 }}{{ 1 and 2 }}{{ 0 or 'x' }}{{ none or 0 }}", "False2x0"},
         {"{{ 1 in [1,2] }}{{ 'a' not in 'abc' }}{{ 'k' in {'k':1} }}{{ 'a' in undefined_var }}", "TrueFalseTrueFalse"},
         {"{{ 1 if 0 }}|{{ 1 if 0 else 2 }}", "|2"},
         {"{{ 3 * 'ab' }}{{ [0] * 3 }}{{ 'a' * -1 }}", "ababab[0, 0, 0]"}});
}

TEST(Jinja, IndexingAndSlicing) {
  check({{"{{ messages[0]['role'] }}{{ messages[0].content }}{{ messages[-1].role }}|{{ messages[5] }}|",
          "userhiassistant||"},
         {"{{ [1,2,3][1:] }}{{ 'hello'[::-1] }}{{ 'hello'[-2:] }}{{ [1,2][5:9] }}{{ [1,2,3,4,5][::2] }}"
          "{{ [1,2,3,4,5][4:0:-2] }}{{ 'abc'[-10:10] }}{{ [1,2,3][:-1] }}",
          "[2, 3]ollehlo[][1, 3, 5][5, 3]abc[1, 2]"},
         {"{{ 'hello world'[0] }}{{ 'h\xC3\xA9llo'[1] }}{{ 'h\xC3\xA9llo'|length }}", "h\xC3\xA9" "5"},
         {"{{ none.x }}|{{ 'abc'.foo }}|{{ {'a': 1}.a }}", "||1"}});
}

TEST(Jinja, Filters) {
  check({{"{{ '  x  ' | trim }}|{{ 'abc' | trim('ac') }}", "x|b"},
         {"{{ messages|length }}{{ 'abc'|length }}{{ {'a':1}|count }}{{ undefined_var|length }}", "2310"},
         {"{{ 'Hi'|upper }}{{ 'Hi'|lower }}{{ 'hello WORLD'|capitalize }}{{ 'hello world-foo (bar)'|title }}",
          "HIhiHello worldHello World-Foo (Bar)"},
         {"{{ {'a':[1,'\xC3\xA9\\n',none,true,1.5]}|tojson }}", "{\"a\": [1, \"\xC3\xA9\\n\", null, true, 1.5]}"},
         {"{{ {'a':1, 'b': [1,2]}|tojson(indent=2) }}", "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}"},
         {"{{ '<&>'|tojson }}{{ {'b':1,'a':2}|tojson(sort_keys=true) }}{{ '\xC3\xA9'|tojson(ensure_ascii=true) }}",
          "\"<&>\"{\"a\": 2, \"b\": 1}\"\\u00e9\""},
         {"{{ undefined_var|default('d') }}{{ none|default('d') }}{{ ''|default('d', true) }}{{ 'x'|d('y') }}",
          "dNonedx"},
         {"{{ [1,2,3] | join }}{{ [1,2,3] | join(', ') }}{{ messages | join(',', attribute='role') }}",
          "1231, 2, 3user,assistant"},
         {"{{ 'aXbXc'|replace('X', '-') }}{{ 'aXbXc'|replace('X', '-', 1) }}{{ 'abc'|replace('', '-') }}",
          "a-b-ca-bXc-a-b-c-"},
         {"{{ 3|string + 'x' }}{{ none|string }}{{ [1, 'a']|string }}", "3xNone[1, 'a']"},
         {"{{ '3.7'|int }}{{ 'x'|int }}{{ 3.9|int }}{{ true|int }}{{ ' 42 '|int }}{{ 'x'|int(7) }}{{ '5'|float }}",
          "3031427" "5.0"},
         {"{{ [1,2,3]|first }}{{ [1,2,3]|last }}{{ 'xy'|first }}|{{ []|first }}|", "13x||"},
         {"{{ {'b':1,'a':2}|items|list }}{{ 'abc'|list }}", "[('b', 1), ('a', 2)]['a', 'b', 'c']"},
         {"{{ -3|abs }}{{ 2.567|round(1) }}{{ [1,2,3]|sum }}{{ [3,1,2]|max }}{{ [3,1,2]|min }}", "32.6" "631"},
         {"{{ [1,1,2]|unique|list }}{{ [1,2,3]|reverse|list }}{{ 'abc'|reverse }}", "[1, 2][3, 2, 1]cba"},
         {"{{ [3,1,2]|sort }}{{ ['b','A','c']|sort }}{{ [3,1,2]|sort(reverse=true) }}", "[1, 2, 3]['A', 'b', 'c'][3, 2, 1]"},
         {"{{ messages|selectattr('role','equalto','user')|list }}", "[{'role': 'user', 'content': 'hi'}]"},
         {"{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='content')|first }}", "yo"},
         {"{{ [1,2,3]|select('odd')|list }}{{ [1,2,3]|reject('odd')|list }}{{ [' a ', ' b']|map('trim')|join('|') }}",
          "[1, 3][2]a|b"},
         {"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", "a\n  b\n\n  c|  a\n  b"},
         {"{{ \"<a href='x'>\"|escape }}{{ 'x'|safe }}", "&lt;a href=&#39;x&#39;&gt;x"},
         {"{{ {'b':1, 'a':2} | dictsort }}{{ 'one two  three' | wordcount }}", "[('a', 2), ('b', 1)]3"}});
}

TEST(Jinja, Tests) {
  check({{"{{ x is equalto 3 }}{{ 3 is equalto 3 }}{{ 3 is eq(3) }}{{ 3 is ne 3 }}", "FalseTrueTrueFalse"},
         {"{{ undefined_var is defined }}{{ undefined_var is undefined }}{{ bos_token is defined }}{{ none is none }}",
          "FalseTrueTrueTrue"},
         {"{{ 'a' is string }}{{ {} is mapping }}{{ '' is iterable }}{{ 1.0 is number }}{{ true is number }}",
          "TrueTrueTrueTrueTrue"},
         {"{{ 3 is odd }}{{ 4 is even }}{{ 4 is divisibleby 2 }}{{ 4 is not divisibleby(3) }}{{ 1 is integer }}",
          "TrueTrueTrueTrueTrue"},
         {"{{ 1.5 is float }}{{ true is boolean }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 1 is in [1] }}",
          "TrueTrueTrueTrueTrue"},
         {"{{ messages is sequence }}{{ messages is not string }}{{ raise_exception is callable }}", "TrueTrueTrue"}});
}

TEST(Jinja, Methods) {
  check({{"{{ '  hi  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|", "hi|hi|a | a|"},
         {"{{ 'hi'.startswith('h') }}{{ 'hi'.endswith(('x','i')) }}{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}",
          "TrueTrueHIhi"},
         {"{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a,b,c'.rsplit(',', 1) }}",
          "['a', 'b', '', 'c']['a', 'b']['a', 'b c']['a,b', 'c']"},
         {"{{ {'a':1}.get('a') }}{{ {'a':1}.get('b') }}{{ {'a':1}.get('b', 5) }}{{ {'a':1}.keys()|list }}"
          "{{ {'a':1}.values()|list }}{{ {'a':1}.items()|list }}",
          "1None5['a'][1][('a', 1)]"},
         {"{{ 'hello world'.title() }}{{ 'ab'.replace('a', 'x') }}{{ '-'.join(['a','b']) }}{{ 'abcb'.find('b') }}",
          "Hello Worldxb" "a-b1"}});
}

TEST(Jinja, FilterBlockAndGeneration) {
  check({{"{% filter upper %}hello {{ 'x' }}{% endfilter %}", "HELLO X"},
         {"{% generation %}abc{% endgeneration %}", "abc"}});
}

TEST(Jinja, StrftimeNowAndRaise) {
  EXPECT_EQ(render("{{ strftime_now('%Y')|length }}"), "4");
  try {
    render("{{ raise_exception('Conversation roles must alternate') }}");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate");
  }
}

// ---------------------------------------------------------------- errors

TEST(JinjaErrors, UnknownFilterNamesItAndLine) {
  std::string e = error_of("line one\n{{ x | frobnicate }}");
  EXPECT_NE(e.find("unknown filter 'frobnicate'"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
}

TEST(JinjaErrors, UnknownTest) {
  std::string e = error_of("{{ x is frob }}");
  EXPECT_NE(e.find("unknown test 'frob'"), std::string::npos) << e;
}

TEST(JinjaErrors, UnknownTag) {
  std::string e = error_of("a\n\n{% include 'x.html' %}");
  EXPECT_NE(e.find("unknown or unsupported tag 'include'"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
}

TEST(JinjaErrors, UnclosedBlock) {
  std::string e = error_of("{% for m in messages %}{{ m }}");
  EXPECT_NE(e.find("unclosed 'for' block"), std::string::npos) << e;
  EXPECT_NE(e.find("endfor"), std::string::npos) << e;
  e = error_of("{% if true %}x{% else %}y");
  EXPECT_NE(e.find("unclosed 'if' block"), std::string::npos) << e;
}

TEST(JinjaErrors, UnclosedTagAndComment) {
  std::string e = error_of("abc {{ x ");
  EXPECT_NE(e.find("unclosed tag"), std::string::npos) << e;
  EXPECT_NE(e.find("line 1, column 5"), std::string::npos) << e;
  e = error_of("{# no end");
  EXPECT_NE(e.find("unclosed comment"), std::string::npos) << e;
  e = error_of("{{ 'abc }}");
  EXPECT_NE(e.find("unterminated string"), std::string::npos) << e;
}

TEST(JinjaErrors, BadSyntax) {
  EXPECT_NE(error_of("{{ 1 + }}").find("unexpected '}}'"), std::string::npos) << error_of("{{ 1 + }}");
  EXPECT_NE(error_of("{% endif %}").find("no matching opening tag"), std::string::npos);
  EXPECT_NE(error_of("{{ (1 }}").find("expected ')'"), std::string::npos) << error_of("{{ (1 }}");
  EXPECT_NE(error_of("{% for 1 in x %}{% endfor %}").find("expected a name"), std::string::npos);
  EXPECT_NE(error_of("{% break %}").find("outside of a for loop"), std::string::npos);
  EXPECT_NE(error_of("{{ a ? b }}").find("unexpected character '?'"), std::string::npos);
}

TEST(JinjaErrors, RuntimeErrors) {
  std::string e = error_of("{{ undefined_var + 'x' }}");
  EXPECT_NE(e.find("'undefined_var' is undefined"), std::string::npos) << e;
  e = error_of("\n{{ messages[9].role }}");
  EXPECT_NE(e.find("list object has no element 9"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  EXPECT_NE(error_of("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a' + 1 }}").find("unsupported operand"), std::string::npos);
  EXPECT_NE(error_of("{{ undefined_fn() }}").find("'undefined_fn' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{% set x = 1 %}{% set x.y = 2 %}").find("not a namespace"), std::string::npos);
  EXPECT_NE(error_of("{{ {'x': undefined_var}|tojson }}").find("not JSON serializable"), std::string::npos);
}

TEST(JinjaErrors, Limits) {
  Limits lim;
  lim.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(100) %}0123456789ABCDEF{% endfor %}", default_vars(), lim).find("too large"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000 }}", default_vars(), lim).find("string too long"), std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursion too deep"), std::string::npos);
  Limits steps;
  steps.max_steps = 10000;
  EXPECT_NE(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", default_vars(),
                     steps)
                .find("step limit"),
            std::string::npos);
  EXPECT_NE(error_of("{{ range(100000000000) }}").find("range() too long"), std::string::npos);
  std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_NE(error_of("{{ " + deep + " }}").find("nested too deeply"), std::string::npos);
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  EXPECT_NE(error_of(blocks).find("nested too deeply"), std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 3000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
}

// An empty sequence times a huge count is empty at once (it used to loop the
// count out: a hang found by template_fuzz).
TEST(JinjaErrors, EmptySequenceTimesHugeCountIsEmptyAtOnce) {
  EXPECT_EQ(render("{{ ('' * 2222222222)|length }}"), "0");
  EXPECT_EQ(render("{{ ([] * 9223372036854775807)|length }}"), "0");
  EXPECT_EQ(render("{{ (4000000000000 * ())|length }}"), "0");
  EXPECT_EQ(render("{{ 'ab' * 3 }}|{{ [1] * 2 }}|{{ 'x' * -5 }}"), "ababab|[1, 1]|");
}

}  // namespace
}  // namespace huginn::jinja
