"""Sentence passes: a long message read as its sentences, each encoded alone, its vector pooled over them;
the search of its sentences costs no further pass, and every result is a function of the text alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csassist.core.knowledge.encode_cache import MemoEncoder
from csassist.core.knowledge.index import build_index
from csassist.core.knowledge.late_chunking import TokenStates, pool_spans
from csassist.core.knowledge.message_vectors import MAX_SENTENCES, SentencePassEncoder
from csassist.core.knowledge.retrieval import Retriever
from csassist.core.knowledge.sentences import locate_sentences, split_sentences
from tests.core.test_index import make_kb
from tests.core.test_late_chunking import LONG, FakeTokenEncoder
from tests.fakes import FakeEncoder

SHORT = "where is my parcel?"


def test_a_long_message_is_encoded_sentence_by_sentence_and_pooled() -> None:
    inner = FakeTokenEncoder()
    encoder = SentencePassEncoder(inner)
    assert encoder.model_id == inner.model_id and encoder.dimension == inner.dimension
    vector = encoder.encode([LONG])
    sentences = split_sentences(LONG)
    assert len(sentences) == 3
    assert inner.state_calls == 3 and inner.calls == 0  # one pass per sentence, no whole pass
    # The fake's token states are word one-hots: pooling every sentence's tokens is the bag of all words.
    assert np.allclose(vector, FakeEncoder().encode([LONG]), atol=1e-6)
    # The sentences themselves (the retriever's per-sentence search) come from those passes.
    again = encoder.sentence_vectors(LONG, sentences)
    assert inner.state_calls == 3 and inner.calls == 0
    assert all(v is not None for v in again)
    assert np.allclose(np.vstack(again), FakeEncoder().encode(sentences), atol=1e-6)  # type: ignore[arg-type]
    assert encoder.sentence_vectors(LONG, ["not one of its sentences"]) == [None]
    assert encoder.sentence_vectors(SHORT, [SHORT]) == [None]  # a short message is read whole


class FakePackingEncoder(FakeTokenEncoder):
    """Also packs several texts into one run, as the ONNX encoder does."""

    def __init__(self) -> None:
        super().__init__()
        self.packed_calls: list[int] = []

    def packed_states(self, texts: list[str]) -> list[TokenStates]:
        self.packed_calls.append(len(texts))
        return [FakeTokenEncoder.token_states(self, text) for text in texts]


def test_an_encoder_that_packs_runs_all_the_sentences_at_once() -> None:
    inner = FakePackingEncoder()
    encoder = SentencePassEncoder(inner)
    vector = encoder.encode([LONG])
    assert inner.packed_calls == [3] and inner.calls == 0
    assert np.allclose(vector, FakeEncoder().encode([LONG]), atol=1e-6)
    own = encoder.sentence_vectors(LONG, split_sentences(LONG))
    assert np.allclose(np.vstack(own), FakeEncoder().encode(split_sentences(LONG)), atol=1e-6)  # type: ignore[arg-type]
    encoder.encode([LONG])
    assert inner.packed_calls == [3] and inner.calls == 0  # remembered


class FakeQuantisedPacker(FakePackingEncoder):
    """Like int8 weights: a packed run's states depend on what else is in the run (one shared scale)."""

    def packed_states(self, texts: list[str]) -> list[TokenStates]:
        scale = 1.0 + 0.1 * len(" ".join(texts))
        return [TokenStates(s.text, s.states * scale + 0.01 * len(texts), s.offsets) for s in super().packed_states(texts)]


def test_a_message_reads_the_same_whatever_was_encoded_before() -> None:
    """A sentence shared with an earlier message, or a memory that overflowed, changes nothing."""
    other = "Hello there. " + split_sentences(LONG)[1] + " Anything else you need from me today, just ask and I will send it over to you?"
    fresh = SentencePassEncoder(FakeQuantisedPacker())
    expected = fresh.encode([LONG])
    expected_sentences = fresh.sentence_vectors(LONG, split_sentences(LONG))
    busy = SentencePassEncoder(FakeQuantisedPacker(), capacity=1)
    busy.encode([other])  # shares a sentence with LONG
    assert np.array_equal(busy.encode([LONG]), expected)
    busy.encode([other])  # LONG is forgotten: read again, to the same values
    for got, want in zip(busy.sentence_vectors(LONG, split_sentences(LONG)), expected_sentences, strict=True):
        assert got is not None and want is not None and np.array_equal(got, want)
    # A short text is always encoded alone, never taken from a long message's run.
    sentence = split_sentences(LONG)[1]
    assert np.allclose(busy.encode([sentence]), FakeEncoder().encode([sentence]), atol=1e-6)


def test_short_messages_and_encoders_without_token_states_are_encoded_whole() -> None:
    inner = FakeTokenEncoder()
    encoder = SentencePassEncoder(inner)
    assert np.allclose(encoder.encode([SHORT]), FakeEncoder().encode([SHORT]))
    assert inner.calls == 1 and inner.state_calls == 0
    assert encoder.encode([]).shape == (0, inner.dimension)
    plain = FakeEncoder()
    vectors = SentencePassEncoder(plain).encode([LONG, SHORT])
    assert plain.calls == 2 and np.allclose(vectors, FakeEncoder().encode([LONG, SHORT]))
    one_sentence = "a long message without any sentence boundary " * 5
    assert np.allclose(encoder.encode([one_sentence]), FakeEncoder().encode([one_sentence]))


def test_token_states_place_each_sentence_where_it_sits_in_the_message() -> None:
    encoder = SentencePassEncoder(FakeTokenEncoder())
    states = encoder.token_states(LONG)
    assert states is not None and states.text == LONG and states.complete
    real = states.offsets[:, 1] > states.offsets[:, 0]
    words = [LONG[a:b] for a, b in states.offsets[real]]
    assert words == LONG.replace(",", " ").replace(".", " ").replace("?", " ").split()  # every word, in place
    sentences = split_sentences(LONG)
    vectors, covered = pool_spans(states, [s or (0, 0) for s in locate_sentences(LONG, sentences)])
    assert covered.all() and np.allclose(vectors, FakeEncoder().encode(sentences), atol=1e-6)
    # A short text's states are the wrapped encoder's own pass.
    short = encoder.token_states(SHORT)
    assert short is not None and short.text == SHORT


def test_very_long_messages_stop_at_the_sentence_limit() -> None:
    inner = FakeTokenEncoder()
    text = " ".join(f"This is sentence number {i} of a long complaint." for i in range(MAX_SENTENCES + 5))
    states = SentencePassEncoder(inner).token_states(text)
    assert states is not None and not states.complete and inner.state_calls == MAX_SENTENCES


def test_the_app_reads_a_long_message_with_one_pass_per_sentence(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index(make_kb(tmp_path / "kb", intents={"gift-cards": "gift"}), index, FakeEncoder())
    inner = FakeTokenEncoder()
    retriever = Retriever.open(index, MemoEncoder(SentencePassEncoder(inner)))
    hits = retriever.search(LONG, k=3)
    assert hits and inner.calls == 0 and inner.state_calls == 3  # message + its sentences: three passes
    reference = Retriever.open(index, FakeEncoder()).search(LONG, k=3)
    assert [h.article_id for h in hits] == [h.article_id for h in reference]  # same vectors for the fake


@pytest.mark.real_model
def test_real_sentence_passes_give_each_sentence_its_own_vector(real_encoder) -> None:  # type: ignore[no-untyped-def]
    message = (
        "Hi, I ordered a linen duvet set on 3 March, order LK-559201, to my flat in Leeds. The courier's app "
        "says it was delivered yesterday but there is no parcel anywhere. Can you tell me what to do next?"
    )
    encoder = SentencePassEncoder(real_encoder)
    vector = encoder.encode([message])[0]
    sentences = split_sentences(message)
    alone = np.asarray(real_encoder.encode(sentences))
    own = encoder.sentence_vectors(message, sentences)
    assert all(v is not None for v in own)
    passes = np.vstack(own)  # type: ignore[arg-type]
    if getattr(real_encoder, "precision", "float32") == "int8":  # one packed run shares its activations' scale
        assert (passes * alone).sum(axis=1).min() > 0.98
    else:  # exact: each sentence sees only itself
        assert np.abs(passes - alone).max() < 1e-4
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    whole = np.asarray(real_encoder.encode([message]))[0]
    assert float(vector @ whole) > 0.8  # the same message, read two ways
    assert float(vector @ alone.mean(axis=0)) / float(np.linalg.norm(alone.mean(axis=0))) > 0.9


@pytest.mark.real_model
def test_real_encoder_reads_a_message_the_same_after_others(real_encoder) -> None:  # type: ignore[no-untyped-def]
    """With int8 weights a packed run shares one activation scale: nothing from another message may leak in."""
    shared = "The courier's app says it was delivered yesterday but there is no parcel anywhere."
    message = (f"Hi, I ordered a linen duvet set on 3 March, order LK-559201, to my flat in Leeds. {shared} "
               "Can you tell me what to do next?")
    other = (f"Good morning, my lamp order LK-100200 is the problem this time, not the duvet. {shared} "
             "Could you look into both for me?")
    sentences = split_sentences(message)
    fresh = SentencePassEncoder(real_encoder)
    want, want_sentences = fresh.encode([message]), fresh.sentence_vectors(message, sentences)
    busy = SentencePassEncoder(real_encoder, capacity=1)
    busy.encode([other])  # its run holds the shared sentence among other sentences
    assert np.array_equal(busy.encode([message]), want)
    busy.encode([other])  # the message is forgotten and read again
    got = busy.sentence_vectors(message, sentences)
    assert all(g is not None and w is not None and np.array_equal(g, w) for g, w in zip(got, want_sentences, strict=True))
