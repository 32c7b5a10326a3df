"""Templates: lookups, typed whole-string values, text rendering, errors, single pass, and speed."""

from __future__ import annotations

import json
import pickle
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodes.templating import (
    TemplateError,
    check_syntax,
    referenced_paths,
    render,
    rewrite_paths,
    to_text,
)

CONTEXT = {
    "input": {
        "customer": {"id": 7, "email": "ada@example.com", "name": "Ada"},
        "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
        "flags": {"vip": True, "note": None},
        "0": "zero",
        "price": 12.5,
        "tricky": "{{input.customer.email}}",
        "ünïcode": "no",
        "text": "héllo ✓ 世界",
    },
    "nodes": {"check": {"condition": True, "left_value": 71}, "fetch": {"result": {"rows": [1, 2]}}},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=15,
)
keys = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)


def text_of(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{input.customer}}", {"id": 7, "email": "ada@example.com", "name": "Ada"}),
        ("{{input.customer.id}}", 7),
        ("{{ input.customer.id }}", 7),
        ("{{\tinput.customer.id\n}}", 7),
        ("{{input.items.1.sku}}", "B2"),
        ("{{input.items}}", CONTEXT["input"]["items"]),
        ("{{input.flags.vip}}", True),
        ("{{input.flags.note}}", None),
        ("{{input.price}}", 12.5),
        ("{{input.0}}", "zero"),
        ("{{nodes.check.condition}}", True),
        ("{{nodes.fetch.result.rows.0}}", 1),
        ("{{input}}", CONTEXT["input"]),
        ("{{nodes}}", CONTEXT["nodes"]),
    ],
)
def test_a_whole_string_template_keeps_the_type(template: str, expected: object) -> None:
    assert render(template, CONTEXT) == expected
    assert type(render(template, CONTEXT)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{input.customer.name}}!", "Hi Ada!"),
        ("id={{input.customer.id}}", "id=7"),
        ("price {{input.price}}", "price 12.5"),
        ("vip={{input.flags.vip}} note={{input.flags.note}}", "vip=true note=null"),
        ("{{input.customer.id}}{{input.customer.name}}", "7Ada"),
        ("c: {{input.customer}}", 'c: {"id":7,"email":"ada@example.com","name":"Ada"}'),
        ("rows {{nodes.fetch.result.rows}}", "rows [1,2]"),
        ("{{input.text}} ok", "héllo ✓ 世界 ok"),
        (" {{input.customer.id}}", " 7"),
        ("{{input.customer.id}} ", "7 "),
        ('{"a": {{input.customer.id}}}', '{"a": 7}'),
        ("no templates here", "no templates here"),
        ("", ""),
    ],
)
def test_templates_inside_text_render_as_text(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_objects_and_lists_but_not_keys() -> None:
    value = {
        "{{input.customer.id}}": "{{input.customer.name}}",
        "list": ["{{input.price}}", 3, None, True, {"deep": "x{{input.customer.id}}"}],
        "number": 4.5,
    }
    assert render(value, CONTEXT) == {
        "{{input.customer.id}}": "Ada",
        "list": [12.5, 3, None, True, {"deep": "x7"}],
        "number": 4.5,
    }


def test_render_returns_new_containers_and_leaves_its_argument_alone() -> None:
    value = {"a": ["{{input.customer.id}}"], "b": {"c": 1}}
    rendered = render(value, CONTEXT)
    assert value == {"a": ["{{input.customer.id}}"], "b": {"c": 1}}
    assert isinstance(rendered, dict)
    assert rendered["a"] is not value["a"]
    assert rendered["b"] is not value["b"]


@pytest.mark.parametrize("scalar", [None, True, False, 0, -3, 2.5, 10**50])
def test_non_string_scalars_pass_through(scalar: object) -> None:
    assert render(scalar, CONTEXT) is scalar


def test_tuples_render_as_lists() -> None:
    assert render(("{{input.customer.id}}", 1), CONTEXT) == [7, 1]


def test_a_missing_key_names_the_path_and_the_keys_there() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{input.customer.nickname}}", CONTEXT)
    assert str(caught.value) == (
        'template {{input.customer.nickname}}: "customer" has no key "nickname" (keys: id, email, name); '
        'if it is optional, give a default: {{input.customer.nickname ?? "..."}}'
    )
    assert caught.value.path == "input.customer.nickname"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{input.nope}}", 'template {{input.nope}}: input has no key "nope"'),
        ("{{nodes.later.x}}", 'template {{nodes.later.x}}: nodes has no key "later" (keys: check, fetch)'),
        ("{{input.items.2}}", 'template {{input.items.2}}: "items" has 2 items, no index 2'),
        ("{{input.items.99999999999999999999999}}", '"items" has 2 items, no index 99999999999999999999999'),
        ("{{input.items.sku}}", 'template {{input.items.sku}}: "items" is a list; "sku" is not an index'),
        ("{{input.items.-1}}", '"items" is a list; "-1" is not an index'),
        ("{{input.customer.id.x}}", 'template {{input.customer.id.x}}: "id" is a number, so it has no key "x"'),
        ("{{input.flags.note.x}}", '"note" is null, so it has no key "x"'),
        ("{{input.customer.name.0}}", '"name" is a string, so it has no key "0"'),
        ("Hello {{input.customer.nickname}}", 'template {{input.customer.nickname}}: "customer" has no key'),
    ],
)
def test_lookup_errors_name_the_full_path(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    assert message in str(caught.value)


def test_a_missing_root_in_the_context_is_an_error() -> None:
    with pytest.raises(TemplateError, match='context has no key "nodes"'):
        render("{{nodes.a}}", {"input": {}})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{}}", "empty template"),
        ("{{ }}", "empty template"),
        ("{{input..a}}", "empty path segment"),
        ("{{input.}}", "empty path segment"),
        ("{{.input}}", "empty path segment"),
        ("{{foo.bar}}", 'unknown root "foo"'),
        ("{{inputs.a}}", 'unknown root "inputs"'),
        ("{{Input.a}}", 'unknown root "Input"'),
        ("{{input.a b}}", '" " is not allowed'),
        ("{{input.a|upper}}", '"|" is not allowed'),
        ("{{input.a()}}", '"(" is not allowed'),
        ("{{input['a']}}", '"[" is not allowed'),
        ("{{input.__class__.x}}", 'input has no key "__class__"'),
        ("{{ input.a + 1 }}", '" " is not allowed'),
        ("{{input.é}}", '"é" is not allowed'),
        ("a {{ }} b", "empty template"),
    ],
)
def test_malformed_templates_are_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["{{ unclosed", "a {{ b", "}} {{", "{", "}}", "{ {input.a} }", "{{input.customer.id}", "x {{ y } }"],
)
def test_braces_without_a_closing_pair_are_literal(text: str) -> None:
    assert render(text, CONTEXT) == text


def test_text_after_the_last_closing_braces_is_literal() -> None:
    assert render("{{input.customer.id}} then {{ never closed", CONTEXT) == "7 then {{ never closed"


def test_a_template_ends_at_the_first_closing_braces() -> None:
    assert render("{{input.customer.id}}}}", CONTEXT) == "7}}"
    assert render("{{input.customer.id}} and {{input.price}}", CONTEXT) == "7 and 12.5"


def test_looked_up_values_are_never_rendered_again() -> None:
    assert render("{{input.tricky}}", CONTEXT) == "{{input.customer.email}}"
    assert render("see {{input.tricky}}", CONTEXT) == "see {{input.customer.email}}"
    context = {"input": {"evil": {"nested": "{{nodes.secret}}", "list": ["{{input}}"]}}, "nodes": {"secret": "s"}}
    assert render("{{input.evil}}", context) == {"nested": "{{nodes.secret}}", "list": ["{{input}}"]}
    assert render("x {{input.evil}}", context) == 'x {"nested":"{{nodes.secret}}","list":["{{input}}"]}'


def test_referenced_paths_lists_each_well_formed_path_once_in_order() -> None:
    value = {
        "a": "{{ input.customer.id }} and {{nodes.check.condition}}",
        "b": ["{{input.customer.id}}", {"c": "{{input.items.0}}"}],
        "d": "{{ }} {{foo.bar}} {{input..x}} no close {{",
        "{{input.key}}": 3,
    }
    assert referenced_paths(value) == ["input.customer.id", "nodes.check.condition", "input.items.0"]
    assert referenced_paths("plain") == []
    assert referenced_paths(None) == []


def test_check_syntax_reports_each_malformed_template_with_its_location() -> None:
    value = {"ok": "{{input.a}}", "bad": ["{{ }}", {"deep": "x {{input..a}} y {{foo.bar}}"}]}
    messages = check_syntax(value)
    assert len(messages) == 3
    assert messages[0].startswith("bad.0: template {{ }}: empty template")
    assert messages[1].startswith("bad.1.deep: template {{input..a}}: empty path segment")
    assert messages[2].startswith('bad.1.deep: template {{foo.bar}}: unknown root "foo"')
    assert check_syntax("{{foo}}") == ['template {{foo}}: unknown root "foo"; paths start with input or nodes']
    assert check_syntax({"a": "{{input.missing.keys.are.fine}}", "b": 3, "c": None}) == []


def test_check_syntax_does_not_need_a_context() -> None:
    assert check_syntax(["{{nodes.anything.at.all}}", "{{input}}"]) == []


def test_template_error_is_a_value_error_that_survives_pickling() -> None:
    error = TemplateError("template {{input.a}}: input has no key", "input.a")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.path == "input.a"


def test_to_text_matches_the_text_rendering() -> None:
    assert to_text("a") == "a"
    assert to_text(None) == "null"
    assert to_text(False) == "false"
    assert to_text({"é": [1, 2.5]}) == '{"é":[1,2.5]}'


def test_unrenderable_values_inside_text_are_template_errors() -> None:
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(TemplateError, match=r"input\.loop"):
        render("x {{input.loop}}", {"input": {"loop": circular}})


def test_error_messages_stay_short_for_huge_templates() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{input." + "a" * 100_000 + "}}", {"input": {}})
    assert len(str(caught.value)) < 500


def test_rendering_a_kilobyte_with_twenty_templates_takes_microseconds() -> None:
    text = ("Dear {{input.customer.name}}, order {{input.items.0.sku}} is ready. " * 20)[:1024]
    assert text.count("{{") >= 20
    render(text, CONTEXT)
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        render(text, CONTEXT)
    per_render = (time.perf_counter() - started) / rounds
    assert per_render < 500e-6


def test_pathological_braces_stay_linear() -> None:
    started = time.perf_counter()
    assert render("{" * 200_000, CONTEXT) == "{" * 200_000
    assert render("{{" * 100_000 + "x", CONTEXT) == "{{" * 100_000 + "x"
    with pytest.raises(TemplateError):
        render("{{" * 100_000 + "}}", CONTEXT)
    assert time.perf_counter() - started < 1


@given(json_values)
def test_a_whole_string_template_returns_exactly_the_value(value: object) -> None:
    assert render("{{input.v}}", {"input": {"v": value}}) == value
    assert render("{{ nodes.n.v }}", {"nodes": {"n": {"v": value}}}) == value


@given(json_values, st.text().filter(lambda text: "{{" not in text))
def test_text_rendering_is_the_value_as_json(value: object, prefix: str) -> None:
    rendered = render(prefix + "[{{input.v}}]", {"input": {"v": value}})
    assert rendered == prefix + "[" + text_of(value) + "]"


@given(st.lists(json_values, min_size=1, max_size=5), st.text(alphabet="ab {}", max_size=5))
def test_every_template_in_text_is_replaced(values: list[object], separator: str) -> None:
    # A "{" right before a template makes "{{{", which is an error by design (see the next test).
    separator = separator.replace("{", "{ ")
    text = separator.join(f"{{{{input.{index}}}}}" for index in range(len(values))) + "."
    expected = separator.join(text_of(value) for value in values) + "."
    assert render(text, {"input": {str(index): value for index, value in enumerate(values)}}) == expected


def test_a_brace_right_before_a_template_is_an_error_not_a_silent_literal() -> None:
    with pytest.raises(TemplateError, match=re.escape('"{" is not allowed')):
        render("{{{input.customer.id}}}", CONTEXT)
    assert render("{ {{input.customer.id}} }", CONTEXT) == "{ 7 }"


@given(st.text().map(lambda text: "{{" + text + "}}" + text))
def test_values_that_look_like_templates_are_never_rendered_again(value: str) -> None:
    context = {"input": {"v": value}, "nodes": {}}
    assert render("{{input.v}}", context) == value
    assert render("<{{input.v}}>", context) == f"<{value}>"
    assert render({"k": ["{{input.v}}"]}, context) == {"k": [value]}


@given(st.dictionaries(keys, json_values, max_size=5), st.lists(keys, min_size=1, max_size=4))
def test_lookups_follow_keys_or_fail_naming_the_path(data: dict[str, object], path: list[str]) -> None:
    template = "{{input." + ".".join(path) + "}}"
    try:
        result = render(template, {"input": data})
    except TemplateError as error:
        assert error.path == "input." + ".".join(path)
        assert template in str(error)
    else:
        value: object = data
        for segment in path:
            assert isinstance(value, list | dict)
            value = value[int(segment)] if isinstance(value, list) else value[segment]
        assert result == value


@given(st.text())
def test_garbage_strings_only_ever_raise_template_errors(text: str) -> None:
    try:
        render(text, CONTEXT)
    except TemplateError:
        pass
    check_syntax(text)
    referenced_paths(text)


@given(
    st.lists(st.sampled_from(["{", "}", "{{", "}}", " ", ".", "input", "nodes", "a", "0", "é", "\x00"])).map("".join)
)
def test_brace_soup_only_ever_raises_template_errors(text: str) -> None:
    try:
        rendered = render(text, {"input": {"a": "A", "0": "Z"}, "nodes": {"a": 1}})
    except TemplateError:
        assert "{{" in text and "}}" in text
    else:
        assert isinstance(rendered, (str, dict, int))


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_unicode_values_survive_both_renderings(value: str) -> None:
    context = {"input": {"v": value}}
    assert render("{{input.v}}", context) == value
    assert render("«{{input.v}}»", context) == f"«{value}»"


# --- defaults: {{path ?? <JSON value>}} -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{input.nope ?? "guest"}}', "guest"),
        ("{{input.nope ?? 0}}", 0),
        ("{{input.nope ?? 2.5}}", 2.5),
        ("{{input.nope ?? true}}", True),
        ("{{input.nope ?? null}}", None),
        ("{{input.nope ?? []}}", []),
        ("{{input.nope ?? { } }}", {}),
        ('{{input.nope ?? {"a": [1, "x"]} }}', {"a": [1, "x"]}),
        ('{{ input.nope??"tight" }}', "tight"),
        ('{{input.nope ?? "a ?? b"}}', "a ?? b"),
        ('{{input.nope ?? "{{input.customer.id"}}', "{{input.customer.id"),
        ('{{input.customer.nickname ?? "Ada"}}', "Ada"),
        ('{{input.items.5.sku ?? "none"}}', "none"),
        ('{{input.flags.note.text ?? "no note"}}', "no note"),
        ("{{nodes.later.result ?? null}}", None),
        ('{{nodes.check.missing ?? "x"}}', "x"),
    ],
)
def test_a_missing_path_takes_the_default_with_its_type(template: str, expected: object) -> None:
    assert render(template, CONTEXT) == expected
    assert type(render(template, CONTEXT)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{input.customer.id ?? 0}}", 7),
        ('{{input.customer.name ?? "guest"}}', "Ada"),
        ('{{input.flags.note ?? "kept: null is a value"}}', None),
        ("{{input.flags.vip ?? false}}", True),
        ('{{input.items.1.sku ?? "none"}}', "B2"),
        ("{{nodes.check.left_value ?? 0}}", 71),
    ],
)
def test_a_path_that_is_there_ignores_the_default(template: str, expected: object) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('Hello {{input.nope ?? "guest"}}!', "Hello guest!"),
        ("n={{input.nope ?? 0}}", "n=0"),
        ("tags {{input.nope ?? [1, 2]}}", "tags [1,2]"),
        ("note={{input.nope ?? null}}", "note=null"),
        ('{{input.customer.name ?? "x"}} / {{input.nope ?? "y"}}', "Ada / y"),
    ],
)
def test_a_default_inside_text_reads_as_text(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{{input.customer.name.0 ?? "x"}}', '"name" is a string, so it has no key "0"'),
        ("{{input.items.sku ?? 1}}", '"items" is a list; "sku" is not an index'),
        ("{{input.price.cents ?? 0}}", '"price" is a number, so it has no key "cents"'),
    ],
)
def test_a_default_does_not_hide_a_wrong_path(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{input.a ?? guest}}", 'the default after "??" must be a JSON value'),
        ("{{input.a ?? 'guest'}}", "text goes in double quotes"),
        ("{{input.a ??}}", 'nothing after "??"'),
        ("{{input.a ?? }}", 'nothing after "??"'),
        ('{{input.a ?? "x" ?? "y"}}', 'the default after "??" must be a JSON value'),
        ("{{input.a ?? NaN}}", "must be a JSON value"),
        ("{{input.a ?? -Infinity}}", "must be a JSON value"),
        ("{{input.a ?? 1e999}}", "must be a JSON value"),
        ("{{input.a ?? input.b}}", "must be a JSON value"),
        ("{{input.a ?? " + "[" * 100_000 + "}}", "must be a JSON value"),
        ('{{?? "x"}}', "empty template"),
        ('{{foo.a ?? "x"}}', 'unknown root "foo"'),
        ('{{input.a | default: "x"}}', 'a default goes after "??"'),
    ],
)
def test_malformed_defaults_are_syntax_errors(template: str, message: str) -> None:
    [problem] = check_syntax({"field": template})
    assert problem.startswith("field: template {{") and message in problem
    # Rendering refuses them too, even where the path is there and the default would not be used.
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(template, {"input": {"a": 1}, "nodes": {}})


def test_a_default_cannot_hold_closing_braces_but_can_hold_spaced_ones() -> None:
    [problem] = check_syntax('{{input.a ?? {"b": {}}}}')
    assert "a default that is an object needs a space before the closing }}" in problem
    assert render('{{input.a ?? {"b": { } } }}', {"input": {}}) == {"b": {}}


def test_each_render_gets_its_own_copy_of_a_list_or_object_default() -> None:
    first = render("{{input.a ?? []}}", {"input": {}})
    assert isinstance(first, list)
    first.append("changed")
    assert render("{{input.a ?? []}}", {"input": {}}) == []


def test_referenced_paths_and_check_syntax_understand_defaults() -> None:
    value = {"a": '{{ input.customer ?? "guest" }}', "b": "{{nodes.fetch.result ?? null}}", "c": "{{input.x ?? nope}}"}
    assert referenced_paths(value) == ["input.customer", "nodes.fetch.result"]
    assert check_syntax({"a": value["a"], "b": value["b"]}) == []


def test_rewrite_paths_changes_only_the_paths() -> None:
    value = {
        "text": 'L={{ input.lhs_value }} and {{input.lhs_value ?? "none"}} but not {{input.lhs_values}}',
        "list": ["{{nodes.check.lhs_value}}", "{{input.bad path}}", 3],
        "{{input.lhs_value}}": "keys stay",
    }

    def rename(path: str) -> str:
        return path.replace("lhs_value", "left_value") if path.split(".")[-1] == "lhs_value" else path

    assert rewrite_paths(value, rename) == {
        "text": 'L={{ input.left_value }} and {{input.left_value ?? "none"}} but not {{input.lhs_values}}',
        "list": ["{{nodes.check.left_value}}", "{{input.bad path}}", 3],
        "{{input.lhs_value}}": "keys stay",
    }
    assert rewrite_paths("no templates", rename) == "no templates"


# --- which node's input a missing key was looked up in ------------------------------------------------------


def test_a_missing_input_key_names_the_node_and_its_input() -> None:
    with pytest.raises(TemplateError) as caught:
        render("Hi {{input.customer}}", {"input": {"order": 1, "condition": True}, "nodes": {}}, node_id="greet")
    assert str(caught.value) == (
        'template {{input.customer}}: the input of node "greet" has no key "customer" '
        '(its input has: order, condition); if it is optional, give a default: {{input.customer ?? "..."}}'
    )
    assert caught.value.path == "input.customer"
    with pytest.raises(TemplateError, match=r'the input of node "greet" has no key "a" \(its input is empty\)'):
        render({"deep": ["{{input.a}}"]}, {"input": {}}, node_id="greet")


def test_without_a_node_the_message_names_the_root() -> None:
    with pytest.raises(
        TemplateError, match=r'template \{\{input.customer\}\}: input has no key "customer" \(keys: a\)'
    ):
        render("{{input.customer}}", {"input": {"a": 1}})


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=15,
).filter(lambda value: "}}" not in json.dumps(value))


@given(json_documents, st.dictionaries(keys, json_values, max_size=4), keys)
def test_a_default_is_exactly_its_json_value_when_the_key_is_missing(
    default: object, data: dict[str, object], key: str
) -> None:
    data.pop(key, None)
    # The space keeps an object's closing brace apart from the template's "}}".
    template = "{{input." + key + " ?? " + json.dumps(default) + " }}"
    assert check_syntax(template) == []
    assert render(template, {"input": data}) == default
    assert render("<" + template + ">", {"input": data}) == "<" + text_of(default) + ">"


@given(json_values, json_documents)
def test_a_default_never_changes_a_value_that_is_there(value: object, default: object) -> None:
    template = "{{input.v ?? " + json.dumps(default) + " }}"
    assert render(template, {"input": {"v": value}}) == value


@given(st.text())
def test_anything_after_the_default_marker_only_ever_raises_template_errors(text: str) -> None:
    template = "{{input.missing ??" + text + "}}"
    try:
        render(template, {"input": {}})
    except TemplateError:
        assert check_syntax(template) != [] or "}}" in text
