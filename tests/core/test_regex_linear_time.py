"""Issue 10.2: no regex over untrusted text (built-in or a company pattern) can freeze analysis.

The bounds below are wall-clock limits with a wide margin for a shared, slow CI machine: they are
not measurements (those live in bench/), they tell "linear" (milliseconds) from "backtracking"
(seconds to hours: ``redact_for_storage("a@" * 1000)`` took 15 s before the fix).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csassist.core.understand.analysis import Analyzer
from csassist.core.understand.entities import extract_entities
from csassist.core.understand.own_words import own_words
from csassist.core.understand.redact import redact, redact_for_storage
from csassist.core.understand.user_patterns import PatternError, compile_user_pattern, pattern_problem
from tests.hostile_corpus import CATASTROPHIC_INPUT, CATASTROPHIC_PATTERNS, REGEX_BOMBS

#: Seconds allowed for one call on a hostile input of a few thousand characters.
BOUND_S = 2.0


def _timed(fn: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    fn(text)
    return time.perf_counter() - started


def test_the_reported_reproduction_is_fast() -> None:
    """The issue's repro: 15 s at 7a33194."""
    assert _timed(redact_for_storage, "a@" * 1000) < BOUND_S
    assert _timed(redact_for_storage, "hello " + "a@" * 1500) < BOUND_S


@pytest.mark.parametrize(("name", "text"), REGEX_BOMBS, ids=[n for n, _ in REGEX_BOMBS])
def test_every_regex_bomb_is_handled_in_bounded_time(name: str, text: str) -> None:
    """Storage redaction, display redaction, entity extraction and the own-words reader stay fast on every bomb."""
    for fn in (redact_for_storage, lambda t: redact(t, reversible=True), extract_entities, own_words):
        assert _timed(fn, text) < BOUND_S, f"{name}: {fn}"


@pytest.mark.parametrize(
    "text",
    ["order" + " " * 5000 + "x", "order no" + " " * 5000, "tracking" + " " * 5000 + "x", "order-" * 1500 + "1"],
)
def test_keyword_rules_do_not_backtrack_over_long_gaps(text: str) -> None:
    """Unbounded ``\\s*`` pairs in the id rules took seconds on long runs of spaces."""
    assert _timed(extract_entities, text) < BOUND_S


# Adversarial strings: repetitions of the pieces regexes trip over, mixed with random text.
_PIECES = st.sampled_from(
    ["a@", "@", "a.", ".", "1", "1 ", "1-", "1.", "#", "#1", "+", "(", ")", "order ", "invoice ", "tracking ",
     " ", "-", "LK-", "NL12", "€", "EUR ", "cvv ", "x" * 60, "\u00a0", "/", "1/1/",
     "\n", "> ", "On 1 ", " wrote:", "From: x\n", "Thanks,\n", "--\n"]
)
_ADVERSARIAL = st.builds(
    lambda parts, reps, noise: "".join(p * reps for p in parts) + noise,
    st.lists(_PIECES, min_size=1, max_size=4),
    st.integers(min_value=200, max_value=1500),
    st.text(max_size=50),
)


@settings(max_examples=25, deadline=None)
@given(_ADVERSARIAL)
def test_property_redaction_and_extraction_are_fast_on_adversarial_strings(text: str) -> None:
    """Whatever repetition of trouble pieces comes in, each call finishes within the bound."""
    assert _timed(redact_for_storage, text) < BOUND_S
    assert _timed(extract_entities, text) < BOUND_S
    assert _timed(own_words, text) < BOUND_S


@pytest.mark.parametrize("pattern", CATASTROPHIC_PATTERNS)
def test_catastrophic_company_patterns_cannot_freeze_analysis(pattern: str) -> None:
    """``order_patterns = ['(a+)+$']`` hung analysis; RE2 matches it in linear time."""
    text = CATASTROPHIC_INPUT * 50
    started = time.perf_counter()
    extract_entities(text, order_patterns=[pattern], tracking_patterns=[pattern])
    Analyzer(None, order_patterns=[pattern]).analyze(text)
    assert time.perf_counter() - started < BOUND_S


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?<=order )\d+", r"\d+(?=x)", "x{5000}"])
def test_patterns_that_cannot_run_in_linear_time_are_refused_with_a_reason(pattern: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_user_pattern(pattern)
    assert repr(pattern) in str(info.value) and "freeze" in str(info.value)
    # ...and at analysis time the refused pattern is skipped, not an exception.
    assert extract_entities("order LK-123456 aaa", order_patterns=[pattern])[0].value == "LK-123456"


def test_a_usable_company_pattern_still_finds_ids() -> None:
    assert pattern_problem(r"\bZX/\d+-\d\b") is None
    found = extract_entities("see ZX/77-1 and é ZX/8-2", order_patterns=[r"ZX/\d+-\d"])
    assert [(e.type, e.text) for e in found] == [("order_id", "ZX/77-1"), ("order_id", "ZX/8-2")]
