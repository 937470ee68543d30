"""Late chunking: sentence vectors pooled from one encoder pass, the memo that keeps token states,
the retriever's use of both, and the fused ranking a second search of the same message reuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from csassist.core.knowledge.encode_cache import MemoEncoder
from csassist.core.knowledge.index import build_index
from csassist.core.knowledge.late_chunking import TokenStates, pool_spans
from csassist.core.knowledge.retrieval import Retriever
from csassist.core.knowledge.sentences import locate_sentences, split_sentences
from tests.core.test_index import make_kb
from tests.fakes import FakeEncoder

_WORD = re.compile(r"\w+")
LONG = (
    "Hello, I bought a gift card for my sister last month and she wants to use it today. "
    "The card says it will expire soon and we are not sure when exactly. "
    "Also, how long does a refund take if she returns the lamp?"
)


class FakeTokenEncoder(FakeEncoder):
    """:class:`FakeEncoder` that also gives token states: one hashed one-hot per word, zero specials.

    The mean of a span's word one-hots, normalised, is exactly ``encode`` of that span's words, so
    late-chunked sentence vectors equal separately encoded ones and every step can be checked exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state_calls = 0

    def token_states(self, text: str) -> TokenStates:
        self.state_calls += 1
        words = list(_WORD.finditer(text))
        states = np.zeros((len(words) + 2, self.dimension), dtype=np.float32)  # [CLS] words [SEP]
        offsets = np.zeros((len(words) + 2, 2), dtype=np.int64)
        for row, match in enumerate(words, start=1):
            states[row] = FakeEncoder(self.dimension).encode([match.group()])[0]
            offsets[row] = match.span()
        return TokenStates(text, states, offsets)


def _states(text: str, vectors: dict[str, list[float]]) -> TokenStates:
    """Token states of ``text`` with a given 2-d state per word, [CLS]/[SEP] at (1, 1)."""
    words = list(_WORD.finditer(text))
    states = [[1.0, 1.0]] + [vectors[m.group()] for m in words] + [[1.0, 1.0]]
    offsets = [(0, 0)] + [m.span() for m in words] + [(0, 0)]
    return TokenStates(text, np.array(states, dtype=np.float32), np.array(offsets, dtype=np.int64))


def test_pool_spans_averages_the_tokens_inside_each_span_and_normalises() -> None:
    text = "ab cd. ef gh"
    tokens = _states(text, {"ab": [3.0, 0.0], "cd": [1.0, 0.0], "ef": [0.0, 2.0], "gh": [0.0, 4.0]})
    vectors, covered = pool_spans(tokens, [(0, 6), (7, 12)])
    assert covered.tolist() == [True, True]
    assert np.allclose(vectors, [[1.0, 0.0], [0.0, 1.0]])  # specials never count; unit length
    # A span over one word is that word's direction; an empty or reversed span has no vector.
    vectors, covered = pool_spans(tokens, [(3, 5), (4, 4), (9, 2)])
    assert covered.tolist() == [True, False, False]
    assert np.allclose(vectors[0], [1.0, 0.0]) and not vectors[1:].any()
    # The whole text's own vector is the mean of every token, specials included.
    expected = np.array([6.0, 8.0]) / 6
    assert np.allclose(tokens.pooled(), expected / np.linalg.norm(expected))


def test_spans_past_the_truncated_tokens_are_not_covered() -> None:
    text = "ab cd. ef gh"
    full = _states(text, {"ab": [1.0, 0.0], "cd": [1.0, 0.0], "ef": [0.0, 1.0], "gh": [0.0, 1.0]})
    # The encoder kept only the tokens up to "ef": the second sentence is cut, so it is not pooled.
    cut = TokenStates(text, full.states[:4], full.offsets[:4], complete=False)
    assert cut.covered_until == 9
    vectors, covered = pool_spans(cut, [(0, 6), (7, 12)])
    assert covered.tolist() == [True, False] and not vectors[1].any()
    # In a complete text, a span may end past its last token (punctuation the tokenizer dropped).
    asked = _states("ab cd. ef gh?", {"ab": [1.0, 0.0], "cd": [1.0, 0.0], "ef": [0.0, 1.0], "gh": [0.0, 1.0]})
    assert pool_spans(asked, [(7, 13)])[1].tolist() == [True]
    empty = TokenStates("", np.zeros((0, 2), np.float32), np.zeros((0, 2), np.int64))
    assert pool_spans(empty, [(0, 1)])[1].tolist() == [False]
    unnormalised = TokenStates(text, full.states * 3, full.offsets, normalize=False)
    assert np.allclose(pool_spans(unnormalised, [(0, 6)])[0][0], [3.0, 0.0])


def test_sentences_are_located_in_the_text_they_came_from() -> None:
    text = "Hi there, my order is late.\n\nIt was due   on Monday! Where is it?"
    sentences = split_sentences(text)
    spans = locate_sentences(text, sentences)
    assert all(span is not None for span in spans)
    assert [text[s:e] for s, e in spans] == sentences  # type: ignore[misc]
    # Markdown the splitter removed from inside a sentence cannot be matched: the caller encodes it alone.
    marked = "I want the **blue** lamp please. Is it in stock today?"
    assert locate_sentences(marked, split_sentences(marked)) == [None, (33, 54)]
    assert locate_sentences("abc", []) == [] and locate_sentences("abc", ["zzz"]) == [None]


def test_memo_keeps_the_token_states_of_the_message_it_encoded() -> None:
    inner = FakeTokenEncoder()
    memo = MemoEncoder(inner)
    vector = memo.encode([LONG])
    assert inner.state_calls == 1 and inner.calls == 0  # one forward pass, through token states
    assert np.allclose(vector, FakeEncoder().encode([LONG]), atol=1e-6)
    states = memo.token_states(LONG)
    assert states is not None and states.text == LONG and inner.state_calls == 1  # remembered
    assert np.array_equal(memo.encode([LONG]), vector)
    # Several new texts at once (a message's sentences) are one batched call, without token states.
    memo.encode(["first sentence here", "second sentence here"])
    assert inner.calls == 2 and inner.state_calls == 1
    assert memo.encode(["first sentence here"]).shape == (1, inner.dimension) and inner.calls == 2
    # Bulk batches bypass the memo and its states; an encoder without token states gives None.
    memo.encode([f"bulk {i}" for i in range(20)])
    assert inner.calls == 22 and inner.state_calls == 1
    assert MemoEncoder(FakeEncoder()).token_states(LONG) is None


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "index"
    build_index(make_kb(tmp_path / "kb", intents={"gift-cards": "gift"}), out, FakeEncoder())
    return out


def test_retriever_pools_sentences_from_the_one_pass(built: Path) -> None:
    separate_encoder, late_encoder = FakeTokenEncoder(), FakeTokenEncoder()
    separate = Retriever.open(built, separate_encoder, late_chunking=False)
    late = Retriever.open(built, late_encoder, late_chunking=True)
    assert len(late._sentences_of_query(LONG)) == 3
    expected = separate.search(LONG, k=3)
    assert separate_encoder.calls == 4  # the message and its three sentences
    got = late.search(LONG, k=3)
    assert late_encoder.calls == 1 and late_encoder.state_calls == 1  # the sentences cost no encoding
    assert [(h.article_id, h.evidence) for h in got] == [(h.article_id, h.evidence) for h in expected]
    assert got[0].score == pytest.approx(expected[0].score, abs=1e-6)


def test_without_token_states_sentences_are_encoded_as_before(built: Path) -> None:
    encoder = FakeEncoder()
    retriever = Retriever.open(built, encoder, late_chunking=True)
    retriever.search(LONG, k=3)
    assert encoder.calls == 4


def test_a_second_search_of_a_message_reuses_its_fused_ranking(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = Retriever.open(built, FakeEncoder())
    fused: list[str] = []
    original = retriever._fuse

    def counting(text: str, *rest: Any) -> dict[int, float]:
        fused.append(text)
        return original(text, *rest)

    monkeypatch.setattr(retriever, "_fuse", counting)
    query = "how long does my refund take"
    plain = [h.article_id for h in retriever.search(query, k=6)]  # the KB vote's unboosted search
    boosted = [h.article_id for h in retriever.search(query, k=6, intents={"gift": 1.0})]  # the panel's
    assert len(fused) == 1
    assert boosted.index("gift-cards") < plain.index("gift-cards")  # the boost still applies
    fresh = Retriever.open(built, FakeEncoder())
    assert boosted == [h.article_id for h in fresh.search(query, k=6, intents={"gift": 1.0})]
    assert plain == [h.article_id for h in fresh.search(query, k=6)]
    retriever.search("gift cards expire", k=3)
    assert len(fused) == 2


@pytest.mark.real_model
def test_real_minilm_late_chunks_equal_across_runtimes_and_near_separate_encodes(real_encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from csassist.core.knowledge.embedder import load_encoder

    message = (
        "Hi, I ordered a linen duvet set on 3 March, order LK-559201, to my flat in Leeds. The courier's app "
        "says it was delivered yesterday but there is no parcel anywhere. Can you tell me what to do next?"
    )
    sentences = split_sentences(message)
    torch_encoder = load_encoder(None)
    runs = {}
    for encoder in (torch_encoder, real_encoder):
        states = encoder.token_states(message)  # type: ignore[union-attr]
        assert states is not None and states.text == message
        assert float(states.pooled() @ encoder.encode([message])[0]) > 0.9999  # the encoder's own vector
        vectors, covered = pool_spans(states, locate_sentences(states.text, sentences))  # type: ignore[arg-type]
        assert covered.all() and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        runs[getattr(encoder, "runtime", "torch")] = vectors
    if "onnx" in runs:  # either runtime serves the other (int8 weights: near, not equal)
        if getattr(real_encoder, "precision", "float32") == "int8":
            assert (runs["onnx"] * runs["torch"]).sum(axis=1).min() > 0.95
        else:
            assert np.abs(runs["onnx"] - runs["torch"]).max() < 1e-4
    # Near, not equal, to each sentence encoded alone: context leaks in, most for a short generic
    # sentence ("Can you tell me what to do next?" 0.38); 0.36 was the dev set's lowest of 100.
    cosines = (runs["torch"] * torch_encoder.encode(sentences)).sum(axis=1)
    assert cosines.min() > 0.3 and cosines[0] > 0.85
