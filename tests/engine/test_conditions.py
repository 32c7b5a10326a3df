"""The if/else operators: a table per operator, then properties that must hold for any values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodes.conditions import OPERATORS, UNARY_OPERATORS, ConditionError, evaluate

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


def test_operator_lists_match_the_contract() -> None:
    assert OPERATORS == (
        "==",
        "=",
        "!=",
        ">",
        "<",
        ">=",
        "<=",
        "contains",
        "not_contains",
        "is_empty",
        "is_not_empty",
    )
    assert frozenset({"is_empty", "is_not_empty"}) == UNARY_OPERATORS


EQUALITY_CASES = [
    # numbers and numeric strings compare as numbers
    (70, 70, True),
    ("70", 70.0, True),
    (" 3.5 ", 3.5, True),
    ("-1e3", -1000, True),
    ("+5", 5, True),
    ("0.1", 0.1, True),
    ("100", "100.0", True),
    (10**30 + 1, str(10**30 + 1), True),
    (10**30 + 1, str(10**30), False),
    ("70", 71, False),
    # strings that merely look like numbers to Python are strings here
    ("nan", float("nan"), False),
    ("inf", float("inf"), False),
    ("", 0, False),
    ("1_000", 1000, False),
    ("0x10", 16, False),
    # "true"/"false" strings against booleans
    ("true", True, True),
    (" TRUE ", True, True),
    ("False", False, True),
    ("false", True, False),
    ("yes", True, False),
    # booleans are not numbers
    (True, 1, False),
    (False, 0, False),
    ("1", True, False),
    (True, True, True),
    # two strings compare as strings
    ("TRUE", "true", False),
    ("FR", "FR", True),
    ("FR", "fr", False),
    # JSON values, structurally
    (None, None, True),
    (None, "", False),
    (None, "null", False),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ([1, "2"], [1.0, 2], True),
    ([True], [1], False),
    ([], {}, False),
    ([1], 1, False),
]


@pytest.mark.parametrize(("left", "right", "expected"), EQUALITY_CASES)
def test_equality_table(left: object, right: object, expected: bool) -> None:
    assert evaluate(left, "==", right) is expected
    assert evaluate(left, "=", right) is expected
    assert evaluate(right, "==", left) is expected
    assert evaluate(left, "!=", right) is not expected


ORDERING_CASES = [
    (71, ">", 70, True),
    ("71", ">", "70", True),
    ("100", ">", "9", True),
    ("-1e3", "<", "-999", True),
    (" 3.5 ", ">=", 3.5, True),
    (3.5, "<=", "3.5", True),
    (2, "<", 1, False),
    (10**40, ">", 10**40 - 1, True),
    (float("inf"), ">", 10**400, True),
    # two non-numeric strings: lexicographic
    ("b", ">", "a", True),
    ("apple", "<", "banana", True),
    ("a", ">=", "a", True),
    ("Z", "<", "a", True),
]


@pytest.mark.parametrize(("left", "operator", "right", "expected"), ORDERING_CASES)
def test_ordering_table(left: object, operator: str, right: object, expected: bool) -> None:
    assert evaluate(left, operator, right) is expected


@pytest.mark.parametrize(
    ("left", "right", "left_type", "right_type"),
    [
        ({"a": 1}, 1, "object", "number"),
        (None, 1, "null", "number"),
        ([1], [2], "list", "list"),
        (True, False, "boolean", "boolean"),
        ("abc", 1, "string", "number"),
        ("true", True, "string", "boolean"),
    ],
)
@pytest.mark.parametrize("operator", [">", "<", ">=", "<="])
def test_ordering_incomparable_types_raises_naming_both(
    left: object, right: object, left_type: str, right_type: str, operator: str
) -> None:
    with pytest.raises(ConditionError) as caught:
        evaluate(left, operator, right)
    assert left_type in str(caught.value)
    assert right_type in str(caught.value)


CONTAINS_CASES = [
    # substring, with the right side as text
    ("hello world", "world", True),
    ("hello world", "World", False),
    ("order 70 items", 70, True),
    ("flag is true", True, True),
    ("it is null", None, True),
    ('payload {"a":1}', {"a": 1}, True),
    ("", "", True),
    ("héllo wörld", "wö", True),
    # list membership uses =='s rules
    (["a", "b"], "a", True),
    ([1, 2, 3], "2", True),
    (["70"], 70.0, True),
    ([True], "true", True),
    ([1], True, False),
    ([{"a": 1}], {"a": 1}, True),
    ([], "a", False),
    # object key membership
    ({"a": 1}, "a", True),
    ({"a": 1}, 1, False),
    ({"1": "x"}, 1, True),
    # numbers and booleans are searched as text; null contains nothing
    (12345, "234", True),
    (12345, 9, False),
    (True, "ru", True),
    (None, "", False),
    (None, "null", False),
]


@pytest.mark.parametrize(("left", "right", "expected"), CONTAINS_CASES)
def test_contains_table(left: object, right: object, expected: bool) -> None:
    assert evaluate(left, "contains", right) is expected
    assert evaluate(left, "not_contains", right) is not expected


EMPTY_CASES = [
    (None, True),
    ("", True),
    ("   \n\t", True),
    ([], True),
    ({}, True),
    (0, False),
    (0.0, False),
    (False, False),
    ("0", False),
    (" x ", False),
    ([None], False),
    ({"a": None}, False),
]


@pytest.mark.parametrize(("value", "expected"), EMPTY_CASES)
def test_is_empty_table(value: object, expected: bool) -> None:
    assert evaluate(value, "is_empty", "ignored") is expected
    assert evaluate(value, "is_not_empty", None) is not expected


@pytest.mark.parametrize("operator", ["~", "", "equals", "===", " == ", "CONTAINS", None, 3, ["=="]])
def test_unknown_operator_raises_listing_the_valid_ones(operator: object) -> None:
    with pytest.raises(ConditionError) as caught:
        evaluate(1, operator, 1)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "unknown operator" in message
    assert all(valid in message for valid in OPERATORS)


def test_condition_error_is_a_value_error() -> None:
    assert issubclass(ConditionError, ValueError)


def test_nan_float_equals_nothing_and_cannot_be_ordered() -> None:
    assert evaluate(math.nan, "==", math.nan) is False
    assert evaluate(math.nan, "!=", 1) is True
    with pytest.raises(ConditionError):
        evaluate(math.nan, ">", 1)


def test_huge_exponent_strings_do_not_crash() -> None:
    assert evaluate("1e999999", ">", 10**400) is True
    # Too large even for Decimal: treated as a plain string.
    assert evaluate("1e99999999999999999999", "==", "1e99999999999999999999") is True
    assert evaluate("1e99999999999999999999", "==", 1) is False


@given(json_values, json_values)
def test_not_equal_is_the_negation_of_equal(left: object, right: object) -> None:
    assert evaluate(left, "!=", right) is (not evaluate(left, "==", right))


@given(json_values, json_values)
def test_equality_is_symmetric(left: object, right: object) -> None:
    assert evaluate(left, "==", right) is evaluate(right, "==", left)


@given(json_values)
def test_a_value_equals_itself_and_its_copy(value: object) -> None:
    assert evaluate(value, "==", value) is True


@given(numbers, numbers)
def test_number_ordering_is_consistent(left: float, right: float) -> None:
    greater = evaluate(left, ">", right)
    equal = evaluate(left, "==", right)
    assert evaluate(left, ">=", right) is (greater or equal)
    assert evaluate(left, "<=", right) is (not greater)
    assert evaluate(left, "<", right) is evaluate(right, ">", left)
    assert sum([greater, equal, evaluate(left, "<", right)]) == 1


@given(numbers, numbers)
def test_numeric_strings_order_like_their_numbers(left: float, right: float) -> None:
    for operator in (">", "<", ">=", "<=", "=="):
        assert evaluate(repr(left), operator, str(right)) is evaluate(left, operator, right)


@given(st.text(), st.text())
def test_strings_contain_their_substrings(prefix: str, middle: str) -> None:
    text = prefix + middle
    assert evaluate(text, "contains", middle) is True
    assert evaluate(text, "not_contains", middle) is False


@given(json_values, json_values)
def test_contains_and_not_contains_are_opposites(left: object, right: object) -> None:
    assert evaluate(left, "not_contains", right) is (not evaluate(left, "contains", right))


@given(json_values, json_values)
def test_any_operator_returns_a_bool_or_raises_condition_error(left: object, right: object) -> None:
    for operator in OPERATORS:
        try:
            result = evaluate(left, operator, right)
        except ConditionError:
            assert operator in (">", "<", ">=", "<=")
        else:
            assert isinstance(result, bool)


@given(json_values, json_values)
def test_unary_operators_ignore_the_right_side(left: object, right: object) -> None:
    for operator in UNARY_OPERATORS:
        assert evaluate(left, operator, right) is evaluate(left, operator, None)
