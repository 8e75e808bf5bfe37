"""Alertmanager's matcher tests, translated (pkg/labels/parse_test.go, matcher_test.go).

Each row names the Go test it comes from.  Facts carry over; the code is wedmetrics'.
Go's ``NewMatcher(t, name, value)`` is ``Matcher(name, op, value)`` here.

Every row runs with both regex engines: RE2 itself (``google-re2``, the
``[re2]`` extra, in ``[test]``) and the translation to Python's ``re``
that is used without it.
"""
from __future__ import annotations

import json
import time

import pytest

from wedmetrics.alerting import matchers as matchers_module
from wedmetrics.alerting.matchers import Matcher, parse_matcher_list

try:
    import re2  # noqa: F401
    HAVE_RE2 = True
except ImportError:
    HAVE_RE2 = False


@pytest.fixture(autouse=True, params=["re2", "python"])
def regex_engine(request):
    if request.param == "re2" and not HAVE_RE2:
        pytest.skip("google-re2 is not installed (pip install 'wedmetrics[re2]')")
    previous = matchers_module.use_regex_engine(request.param)
    yield request.param
    matchers_module.use_regex_engine(previous)

EQ, NE, RE, NRE = "=", "!=", "=~", "!~"


def M(op, name, value):
    return Matcher(name, op, value)


# pkg/labels/parse_test.go TestMatchers: input -> matchers, or an error fragment
PARSE = [
    ("TestMatchers", "{}", []),
    ("TestMatchers", ",", "bad matcher format: "),
    ("TestMatchers", "{,}", "bad matcher format: "),
    ("TestMatchers", "{foo='}", [M(EQ, "foo", "'")]),
    ("TestMatchers", "{foo=`}", [M(EQ, "foo", "`")]),
    ("TestMatchers", '{foo=\\"}', [M(EQ, "foo", '"')]),
    ("TestMatchers", "{foo=bar}", [M(EQ, "foo", "bar")]),
    ("TestMatchers", '{foo="bar"}', [M(EQ, "foo", "bar")]),
    ("TestMatchers", "{foo=~bar.*}", [M(RE, "foo", "bar.*")]),
    ("TestMatchers", '{foo=~"bar.*"}', [M(RE, "foo", "bar.*")]),
    ("TestMatchers", "{foo!=bar}", [M(NE, "foo", "bar")]),
    ("TestMatchers", '{foo!="bar"}', [M(NE, "foo", "bar")]),
    ("TestMatchers", "{foo!~bar.*}", [M(NRE, "foo", "bar.*")]),
    ("TestMatchers", '{foo!~"bar.*"}', [M(NRE, "foo", "bar.*")]),
    ("TestMatchers", '{foo="bar", baz!="quux"}', [M(EQ, "foo", "bar"), M(NE, "baz", "quux")]),
    ("TestMatchers", '{foo="bar", baz!~"quux.*"}', [M(EQ, "foo", "bar"), M(NRE, "baz", "quux.*")]),
    ("TestMatchers", '{foo="bar",baz!~".*quux", derp="wat"}',
     [M(EQ, "foo", "bar"), M(NRE, "baz", ".*quux"), M(EQ, "derp", "wat")]),
    ("TestMatchers", '{foo="bar", baz!="quux", derp="wat"}',
     [M(EQ, "foo", "bar"), M(NE, "baz", "quux"), M(EQ, "derp", "wat")]),
    ("TestMatchers", '{foo="bar", baz!~".*quux.*", derp="wat"}',
     [M(EQ, "foo", "bar"), M(NRE, "baz", ".*quux.*"), M(EQ, "derp", "wat")]),
    ("TestMatchers", '{foo="bar", instance=~"some-api.*"}', [M(EQ, "foo", "bar"), M(RE, "instance", "some-api.*")]),
    ("TestMatchers", '{foo=""}', [M(EQ, "foo", "")]),
    ("TestMatchers", '{foo="bar,quux", job="job1"}', [M(EQ, "foo", "bar,quux"), M(EQ, "job", "job1")]),
    ("TestMatchers", '{foo = "bar", dings != "bums", }', [M(EQ, "foo", "bar"), M(NE, "dings", "bums")]),
    ("TestMatchers", "foo=bar,dings!=bums", [M(EQ, "foo", "bar"), M(NE, "dings", "bums")]),
    ("TestMatchers", '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
     [M(EQ, "quote", 'She said: "Hi, ladies! That\'s gender-neutral…"')]),
    ("TestMatchers", 'statuscode=~"5.."', [M(RE, "statuscode", "5..")]),
    ("TestMatchers", "tricky=~~~", [M(RE, "tricky", "~~")]),
    ("TestMatchers", 'trickier==\\\\=\\=\\"', [M(EQ, "trickier", '=\\=\\="')]),
    ("TestMatchers", 'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
     [M(NE, "contains_quote", '"'), M(NRE, "contains_comma", "foo,bar")]),
    ("TestMatchers", "{foo=bar}}", [M(EQ, "foo", "bar}")]),
    ("TestMatchers", "{foo=bar}},}", [M(EQ, "foo", "bar}}")]),
    ("TestMatchers", "{foo=,bar=}}", [M(EQ, "foo", ""), M(EQ, "bar", "}")]),
    ("TestMatchers", "{foo=bar\\t}", [M(EQ, "foo", "bar\\t")]),
    ("TestMatchers", "{foo=bar\\n}", [M(EQ, "foo", "bar\n")]),
    ("TestMatchers", "{foo=bar\\}", [M(EQ, "foo", "bar\\")]),
    ("TestMatchers", "{foo=bar\\\\}", [M(EQ, "foo", "bar\\")]),
    ("TestMatchers", '{foo=bar\\"}', [M(EQ, "foo", 'bar"')]),
    ("TestMatchers", "job=", [M(EQ, "job", "")]),
    ("TestMatchers", 'job="value', 'matcher value contains unescaped double quote: "value'),
    ("TestMatchers", 'job=value"', 'matcher value contains unescaped double quote: value"'),
    ("TestMatchers", 'trickier==\\\\=\\=\\""', 'matcher value contains unescaped double quote: =\\\\=\\=\\""'),
    ("TestMatchers", 'contains_unescaped_quote = foo"bar', 'matcher value contains unescaped double quote: foo"bar'),
    ("TestMatchers", '{invalid-name = "valid label"}', 'bad matcher format: invalid-name = "valid label"'),
    ("TestMatchers", '{foo=~"invalid[regexp"}', "missing closing ]"),
    ("TestMatchers", '"{foo=\\"bar"}', 'bad matcher format: "{foo=\\"bar"'),
    ("TestMatchers", '"foo=\\"bar"', 'bad matcher format: "foo=\\"bar"'),
    ("TestMatchers", '"foo=\\"bar\\""', 'bad matcher format: "foo=\\"bar\\""'),
    ("TestMatchers", '"foo=\\"bar\\"', 'bad matcher format: "foo=\\"bar\\"'),
    ("TestMatchers", '"{foo=\\"bar\\"}"', 'bad matcher format: "{foo=\\"bar\\"}"'),
    ("TestMatchers", '"foo="bar""', 'bad matcher format: "foo="bar""'),
    ("TestMatchers", "{{foo=", "bad matcher format: {foo="),
    ("TestMatchers", "{foo=", [M(EQ, "foo", "")]),
    ("TestMatchers", "{foo=}b", [M(EQ, "foo", "}b")]),
]


@pytest.mark.parametrize("go_test,text,want", PARSE, ids=[f"{r[0]}:{r[1]}" for r in PARSE])
def test_parse_matchers(go_test, text, want):
    if isinstance(want, str):
        with pytest.raises(ValueError) as e:
            parse_matcher_list(text)
        assert want in str(e.value)
    else:
        assert list(parse_matcher_list(text)) == want


# pkg/labels/matcher_test.go TestMatcher: matcher, value, match
MATCH = [
    ("TestMatcher", (EQ, "bar"), "bar", True),
    ("TestMatcher", (EQ, "bar"), "foo-bar", False),
    ("TestMatcher", (NE, "bar"), "bar", False),
    ("TestMatcher", (NE, "bar"), "foo-bar", True),
    ("TestMatcher", (RE, "bar"), "bar", True),
    ("TestMatcher", (RE, "bar"), "foo-bar", False),
    ("TestMatcher", (RE, ".*bar"), "foo-bar", True),
    ("TestMatcher", (NRE, "bar"), "bar", False),
    ("TestMatcher", (NRE, "bar"), "foo-bar", True),
    ("TestMatcher", (NRE, ".*bar"), "foo-bar", False),
    ("TestMatcher", (RE, "foo.bar"), "foo-bar", True),
    ("TestMatcher", (RE, "foo\\.bar"), "foo-bar", False),
    ("TestMatcher", (RE, "foo\\.bar"), "foo.bar", True),
    ("TestMatcher", (EQ, "foo\nbar"), "foo\nbar", True),
    ("TestMatcher", (RE, "foo.bar"), "foo\nbar", False),
    ("TestMatcher", (RE, "(?s)foo.bar"), "foo\nbar", True),
    ("TestMatcher", (EQ, '~!="'), '~!="', True),
]


@pytest.mark.parametrize("go_test,spec,value,match", MATCH)
def test_matcher(go_test, spec, value, match):
    op, pattern = spec
    assert Matcher("name", op, pattern).matches_value(value) is match


# pkg/labels/matcher_test.go TestMatcherString
STRING = [
    ("TestMatcherString", "foo", EQ, "bar", 'foo="bar"'),
    ("TestMatcherString", "foo", NE, "bar", 'foo!="bar"'),
    ("TestMatcherString", "foo", RE, "bar", 'foo=~"bar"'),
    ("TestMatcherString", "foo", NRE, "bar", 'foo!~"bar"'),
    ("TestMatcherString", "foo", EQ, "back\\slash", 'foo="back\\\\slash"'),
    ("TestMatcherString", "foo", EQ, 'double"quote', 'foo="double\\"quote"'),
    ("TestMatcherString", "foo", EQ, "new\nline", 'foo="new\\nline"'),
    ("TestMatcherString", "foo", EQ, "tab\tstop", 'foo="tab\tstop"'),
    ("TestMatcherString", "foo", EQ, "🙂", 'foo="🙂"'),
    ("TestMatcherString", "foo!", NE, "bar", '"foo!"!="bar"'),
    ("TestMatcherString", "foo🙂", EQ, "bar", 'foo🙂="bar"'),
    ("TestMatcherString", "foo bar", EQ, "baz", '"foo bar"="baz"'),
]


@pytest.mark.parametrize("go_test,name,op,value,want", STRING)
def test_matcher_string(go_test, name, op, value, want):
    assert str(Matcher(name, op, value)) == want


# pkg/labels/matcher_test.go TestMatcherJSONMarshal (marshal, then unmarshal back)
MARSHAL = [
    ("TestMatcherJSONMarshal", EQ, '{"name":"foo","value":"bar","isRegex":false,"isEqual":true}'),
    ("TestMatcherJSONMarshal", NE, '{"name":"foo","value":"bar","isRegex":false,"isEqual":false}'),
    ("TestMatcherJSONMarshal", RE, '{"name":"foo","value":"bar","isRegex":true,"isEqual":true}'),
    ("TestMatcherJSONMarshal", NRE, '{"name":"foo","value":"bar","isRegex":true,"isEqual":false}'),
]


@pytest.mark.parametrize("go_test,op,want", MARSHAL)
def test_matcher_json_marshal(go_test, op, want):
    m = Matcher("foo", op, "bar")
    assert json.dumps(m.to_api(), separators=(",", ":")) == want
    assert Matcher.from_api(json.loads(want)) == m


# pkg/labels/matcher_test.go TestMatcherJSONUnmarshal (isEqual defaults to true)
UNMARSHAL = [
    ("TestMatcherJSONUnmarshal", EQ, '{"name":"foo","value":"bar","isRegex":false}'),
    ("TestMatcherJSONUnmarshal", EQ, '{"name":"foo","value":"bar","isRegex":false,"isEqual":true}'),
    ("TestMatcherJSONUnmarshal", NE, '{"name":"foo","value":"bar","isRegex":false,"isEqual":false}'),
    ("TestMatcherJSONUnmarshal", RE, '{"name":"foo","value":"bar","isRegex":true,"isEqual":true}'),
    ("TestMatcherJSONUnmarshal", NRE, '{"name":"foo","value":"bar","isRegex":true,"isEqual":false}'),
]


@pytest.mark.parametrize("go_test,op,text", UNMARSHAL)
def test_matcher_json_unmarshal(go_test, op, text):
    assert Matcher.from_api(json.loads(text)) == Matcher("foo", op, "bar")


# Corners of the issue that Alertmanager's RE2 semantics decide (wedmetrics' own rows).
RE2 = [
    ("issue#12", "(?i)critical", "CRITICAL", True),
    ("issue#12", "a(?i)b|c", "C", True),
    ("issue#12", "a(?i)b|c", "Ab", False),
    ("issue#12", "x$", "x\n", False),
    ("issue#12", "\\d+", "٣", False),           # RE2 \d is ASCII
    ("issue#12", "[[:alpha:]]+", "abc", True),
    ("issue#12", "(?U)a+", "aaa", True),           # ungreedy: accepted, as RE2 does
    ("issue#12", "(?U)a+?b", "aab", True),
    ("issue#12", "\\bfoo\\b", "foo", True),
    ("issue#12", "x\\bé", "xé", True),            # RE2 \b is ASCII: a boundary between x and é
    ("issue#12", "a{,3}", "a{,3}", True),          # not a repeat in RE2: the literal text
    ("issue#12", "a{,3}", "aaa", False),
    ("issue#12", "a{2,3}", "aaa", True),
    ("issue#12", "\\x{41}\\x42", "AB", True),
]


@pytest.mark.parametrize("source,pattern,value,match", RE2)
def test_re2_corners(source, pattern, value, match):
    assert Matcher("l", RE, pattern).matches_value(value) is match


@pytest.mark.parametrize("pattern", ["(?=a)", "(a)\\1", "(?<!a)b", "\\Z", "a{1001}", "a{2,1}", "a**", "a*+",
                                     "\\C", "\\u0041", "*a"])
def test_what_re2_refuses_is_refused(pattern):
    with pytest.raises(ValueError, match="regex"):
        Matcher("l", RE, pattern)


def test_catastrophic_patterns_are_linear_with_re2_and_refused_by_the_translator(regex_engine):
    # (a+)+b against 26 a's takes seconds in a backtracking engine; it is reachable from a
    # config, a silence or a filter= and would run inside the dispatcher's lock.
    for pattern in ("(a+)+b", "(a|a)*b", "(.*a){12}"):
        if regex_engine == "python":
            with pytest.raises(ValueError, match="wedmetrics\\[re2\\]"):
                Matcher("l", RE, pattern)
            continue
        m = Matcher("l", RE, pattern)
        started = time.perf_counter()
        assert m.matches_value("a" * 26) is (pattern == "(.*a){12}")
        assert time.perf_counter() - started < 0.1
