"""``Choice``: validation, option lookup (JSON-number tolerant, bool-strict) and the default."""

import re

import pytest

from search_spaces import Choice


@pytest.mark.parametrize(
    ("name", "options", "shown"),
    [
        ("k", [], "[]"),  # empty options
        ("k", [3, 5, 3], "3"),  # duplicate option
        ("k", ["a", "b", "a"], "'a'"),
        ("k", [3, [5]], "[5]"),  # non-scalar options
        ("k", [3, None], "None"),
        ("k", [{"x": 1}], "{'x': 1}"),
        ("", [1, 2], "''"),  # bad names
        (7, [1, 2], "7"),
        (None, [1, 2], "None"),
    ],
)
def test_invalid_choice_raises_value_error_showing_bad_value(name, options, shown):
    with pytest.raises(ValueError, match=re.escape(shown)):
        Choice(name, options)


def test_duplicate_message_names_the_repeated_option_and_the_list():
    with pytest.raises(ValueError, match=r"option 5 appears twice in \[3, 5, 5\]"):
        Choice("k", [3, 5, 5])


@pytest.mark.parametrize("options", [[1, True], [0, False], [1, "1"], [True, "True"]])
def test_values_of_different_json_types_are_not_duplicates(options):
    assert Choice("x", options).options == tuple(options)


def test_options_are_stored_as_a_tuple_in_order():
    choice = Choice("w", (x for x in [32, 8, 16]))  # any iterable
    assert choice.options == (32, 8, 16)
    assert len(choice) == 3


def test_default_is_the_first_option():
    assert Choice("op", ["skip", "conv3x3", "none"]).default == "skip"
    assert Choice("w", [32, 8, 16]).default == 32


def test_choice_is_immutable():
    choice = Choice("w", [8, 16])
    with pytest.raises(AttributeError):
        choice.options = (1,)


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ([3, 5, 7], 5, 1),
        ([3, 5, 7], 3.0, 0),  # JSON has one number type: 3.0 is the int option 3
        ([0.5, 1.0], 1, 1),  # ... and 1 is the float option 1.0
        (["a", "b"], "b", 1),
        ([1, True], True, 1),  # True is not 1 ...
        ([1, True], 1, 0),  # ... and 1 is not True
        ([False, True], False, 0),
    ],
)
def test_index_and_contains_find_the_option(options, value, expected):
    choice = Choice("x", options)
    assert choice.index(value) == expected
    assert choice.contains(value)


@pytest.mark.parametrize(
    ("options", "value"),
    [
        ([1, 2], True),  # bool is never an int option
        ([0, 1], False),
        ([True, False], 1),  # nor an int a bool option
        ([3, 5], "3"),  # a string is not a number
        (["3"], 3),
        ([3, 5], 4),
        ([3, 5], 3.5),
        ([3, 5], None),
        ([3, 5], [3]),
    ],
)
def test_value_outside_options_is_rejected_with_the_valid_options(options, value):
    choice = Choice("ks", options)
    assert not choice.contains(value)
    with pytest.raises(ValueError, match=re.escape(f"ks={value!r} is not one of {options!r}")):
        choice.index(value)


def test_nan_option_is_rejected():
    # Consequence today: SearchSpace("s", [Choice("x", [nan, 1.0])]).sample(default_rng(1)) draws
    # code 0, and canonicalize -> validate raises InvalidArchError "x=nan is not one of [nan, 1.0]".
    with pytest.raises(ValueError, match="nan"):
        Choice("x", [float("nan"), 1.0])
