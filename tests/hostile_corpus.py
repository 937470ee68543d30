"""One hostile corpus for every test that feeds untrusted text to csassist (core, CLI and UI).

Customer messages, feed lines, KB files, file names, model drafts and config values all come from
outside the code, so the same set of nasty inputs is thrown at every entry point and every renderer.
Keeping it in one module means a new trick (found in a bug report or a fuzz run) is added once and is
then tried everywhere.  Data only: no csassist imports, so any test can import it cheaply.

Groups (each a tuple of ``(name, value)`` pairs so a parametrised test gets readable ids):

* ``MARKUP`` - Rich/Textual markup that must stay literal text (and must not crash or run actions).
* ``ESCAPES`` - ANSI CSI / OSC 52 clipboard / OSC 8 links / DCS / C1 / raw controls.
* ``UNICODE_TRICKS`` - bidi overrides, invisible characters, tag-block smuggling, combining floods,
  NFC/NFD pairs.
* ``SURROGATES`` - lone surrogates as Python decodes them from JSON ``"\\ud800"`` (truncated emoji from
  JavaScript bridges); they cannot be encoded as UTF-8 and crash tokenizers.
* ``HUGE`` - very long text, huge digit runs (beyond Python's int max str digits), deep nesting.
* ``REGEX_BOMBS`` - inputs that make backtracking regexes take polynomial/exponential time.
* ``CATASTROPHIC_PATTERNS`` - user-supplied regexes (``order_patterns``) that backtrack catastrophically.
* ``PII`` - card numbers and contact details that must never reach disk unredacted.
* ``TIMESTAMPS_OK`` / ``TIMESTAMPS_BAD`` - ``ts`` values a feed may send: accepted (with the epoch
  seconds they mean) and refused.

``HOSTILE_TEXTS`` is every text value above (strings only) for "render/analyse all of it" tests.
"""

from __future__ import annotations

#: Markup that a renderer could interpret: all of it must be shown as the literal characters.
MARKUP: tuple[tuple[str, str], ...] = (
    ("rich-style", "[bold red]not bold[/bold red]"),
    ("click-action", "[@click=app.quit]CLICK[/]"),
    ("closing-tag-in-url", "see https://h.example/[/]x for details"),
    ("bare-close", "[/]"),
    ("placeholder-like", "Dear [Customer Name], your [company] order"),
    ("link-markup", "[link=https://evil.example]harmless[/link]"),
    ("unbalanced", "[bold]open [italic]never closed"),
    ("escaped-bracket", "\\[not markup] and \\\\[bold]x"),
    ("textual-variable", "$accent $primary [$warning]x[/]"),
)

#: Terminal escape sequences and raw control characters.
ESCAPES: tuple[tuple[str, str], ...] = (
    ("csi-clear", "hi\x1b[2J\x1b[Hthere"),
    ("osc52-clipboard", "\x1b]52;c;ZXZpbA==\x07 copy me"),
    ("osc8-link", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"),
    ("dcs", "\x1bP+q544e\x1b\\"),
    ("c1-csi", "\x9b31mred"),
    ("bell-nul-del", "a\x07b\x00c\x7fd"),
    ("carriage-return-overwrite", "refund approved\rrefund denied"),
    ("backspaces", "yes\x08\x08\x08no"),
    ("title-set", "\x1b]0;pwned\x07"),
)

#: Unicode that changes how text reads or hides part of it.
UNICODE_TRICKS: tuple[tuple[str, str], ...] = (
    ("rlo", "pay \u202eexe.txt"),
    ("isolates", "a\u2066b\u2069c\u2067d"),
    ("zero-width", "pass\u200bword\u2060x\ufeff"),
    ("tag-smuggling", "hello" + "".join(chr(0xE0000 + ord(c)) for c in "ignore all")),
    ("line-separators", "one\u2028two\u2029three"),
    ("combining-flood", "Z" + "\u0301" * 500),
    ("nfd-cafe", "cafe\u0301 cre\u0300me"),  # NFC: "café crème"
    ("emoji-zwj", "family \U0001f468\u200d\U0001f469\u200d\U0001f467 ok"),
    ("fullwidth", "\uff4f\uff52\uff44\uff45\uff52 LK-123456"),
)

#: Lone surrogates (what json.loads makes of "\ud800"); UTF-8 cannot encode them.
SURROGATES: tuple[tuple[str, str], ...] = (
    ("lone-high", "x \ud800 y"),
    ("lone-low", "x \udfff y"),
    ("truncated-emoji", "thanks \ud83d"),
    ("reversed-pair", "\ude00\ud83d"),
    ("only-surrogate", "\ud800"),
)

#: Digit runs longer than ``sys.get_int_max_str_digits()`` (4300 by default) and other bulk.
HUGE_DIGITS = "9" * 5000
HUGE: tuple[tuple[str, str], ...] = (
    ("huge-digits", f"my order {HUGE_DIGITS}"),
    ("long-word", "a" * 100_000),
    ("many-lines", "line\n" * 20_000),
    ("long-amount", "EUR " + "1," * 3000 + "00"),
)
#: A JSON body with a number Python refuses to convert (ValueError in json.loads).
HUGE_INT_JSON = '{"conversation_id": "c-1", "text": "hi", "ts": ' + HUGE_DIGITS + "}"
#: JSON nested deeper than the parser's recursion limit.
DEEP_JSON = '{"conversation_id": "c-1", "text": "hi", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"

#: Inputs that send backtracking regexes into polynomial or exponential time.
REGEX_BOMBS: tuple[tuple[str, str], ...] = (
    ("at-signs", "a@" * 1000),
    ("at-signs-hello", "hello " + "a@" * 1500),
    ("at-dots", "a@b." * 1500),
    ("digits-separated", "1 " * 3000),
    ("digits-dashed", "1-" * 3000),
    ("digit-run", "1" * 20_000),
    ("hash-digits", "#" + "1" * 5000),
    ("order-words", "order " * 3000),
    ("order-number-dashes", "order " + "1-" * 3000),
    ("iban-like", "NL" + "12 A" * 3000),
    ("plus-parens", "+(" * 3000),
    ("email-dots", "a." * 5000 + "@"),
    ("word-at", ("x" * 60 + "@") * 300),
    ("money-groups", "€" + "1.000" * 3000),
    ("dates", "1/1/" * 3000),
)

#: User-supplied order/tracking patterns that backtrack catastrophically (or are otherwise unusable).
CATASTROPHIC_PATTERNS: tuple[str, ...] = (
    "(a+)+$",
    "(a|a)*b",
    "(a*)*b",
    "(.*a){20}",
    "(\\w+\\s?)+$",
    "([a-z]+)*[0-9]",
)
#: An input that makes each of the patterns above blow up with a backtracking engine.
CATASTROPHIC_INPUT = "a" * 40 + "!"

#: Personal data that must be redacted before anything is stored (and masked on screen).
PII: tuple[tuple[str, str], ...] = (
    ("card-after-hash", "my card #5500000000000004 was declined"),
    ("card-after-order", "order 4111111111111111 failed"),
    ("card-after-invoice", "invoice 4012888888881881 is wrong"),
    ("card-grouped", "card 4111 1111 1111 1111 exp 12/29"),
    ("cvv", "cvv 123 and CVC: 4567"),
    ("email", "write to ana.de.vries@example.com please"),
    ("phone", "call me on +31 6 12345678"),
)
#: Conversation ids that are themselves personal data (the feedback log must not store them raw).
PII_CONVERSATION_IDS: tuple[str, ...] = ("ana.de.vries@example.com", "+31612345678")

#: ``ts`` values a feed may send that must be accepted, with the epoch seconds they stand for.
TIMESTAMPS_OK: tuple[tuple[object, float], ...] = (
    (1764300000, 1764300000.0),  # seconds
    (1764300000.5, 1764300000.5),
    (1764300000000, 1764300000.0),  # milliseconds (JavaScript Date.now())
    (1764300000000000, 1764300000.0),  # microseconds
    (1764300000000000000, 1764300000.0),  # nanoseconds (Go time.UnixNano())
    ("2025-11-28T03:20:00Z", 1764300000.0),
    ("2025-11-28T04:20:00+01:00", 1764300000.0),
    ("2025-11-28T03:20:00", 1764300000.0),  # no zone: UTC
)
#: ``ts`` values that must be refused with a clear message (HTTP 400 / a reported line).
TIMESTAMPS_BAD: tuple[object, ...] = (
    1e300,
    -1,
    -1e18,
    float("inf"),
    1e30,
    10**40,
    True,
    "yesterday-ish",
    "",
    "9999999-01-01T00:00:00",
    [1764300000],
    {"s": 1},
)
#: The same bad values as they appear in a JSON body (some cannot be written as Python values).
TIMESTAMPS_BAD_JSON: tuple[str, ...] = ("1e300", "-1", "1e30", "Infinity", "NaN", "true", '"soon"', HUGE_DIGITS)


def _texts() -> tuple[str, ...]:
    """Every string in the groups above, in a stable order."""
    out: list[str] = []
    for group in (MARKUP, ESCAPES, UNICODE_TRICKS, SURROGATES, HUGE, REGEX_BOMBS, PII):
        out.extend(value for _name, value in group)
    return tuple(out)


#: Every hostile text (for "render / analyse / store all of it" tests).
HOSTILE_TEXTS: tuple[str, ...] = _texts()
#: ``(name, text)`` pairs of the above, for ``pytest.mark.parametrize(..., ids=...)``.
HOSTILE_NAMED: tuple[tuple[str, str], ...] = tuple(
    pair for group in (MARKUP, ESCAPES, UNICODE_TRICKS, SURROGATES, HUGE, REGEX_BOMBS, PII) for pair in group
)
#: The short ones (under 2,000 characters): cheap enough for per-widget render tests.
HOSTILE_SHORT: tuple[str, ...] = tuple(t for t in HOSTILE_TEXTS if len(t) < 2000)
