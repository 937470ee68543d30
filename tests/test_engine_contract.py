"""One contract for every engine the UI can be given: the real Assistant and the UI tests' fake.

Like harlequin's adapter tests, each test runs against every implementation, so the fake cannot drift
from what the app relies on (and the real engine cannot drift from what the UI tests assume).  The
real engine is built the way the app builds it -- :class:`~csassist.core.workspace.Workspace` with the
real MiniLM encoder on a three-article KB -- plus a scripted generator so slots 1.. stream without
weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csassist.core.engine import Engine, EngineInfo
from csassist.core.types import Analysis, CancelToken, Message, Passage, SuggestionUpdate
from csassist.core.workspace import Workspace
from csassist.settings import GenerationSettings, RetrievalSettings, Settings
from tests.core.gen_fakes import FakeGenerator
from tests.ui.fakes import FakeAssistant

FIXTURE_KB = Path(__file__).resolve().parent / "ui" / "fixtures" / "kb"
PARCEL = Message("c1", "customer", "Hi, my parcel never arrived. Where is it?", customer="Ana")
DRAFTS = (
    "Sorry about the wait, I have opened an investigation with the courier today.",
    "Thanks for telling us: parcels usually arrive in three to five working days.",
    "I understand, let me check the tracking for you and get back shortly.",
)


def real_engine(tmp_path: Path) -> Engine:
    """The real engine on the fixture KB (indexed here) with a scripted reply generator."""
    settings = Settings(
        retrieval=RetrievalSettings(kb_dir=str(FIXTURE_KB), index_dir=str(tmp_path / "index")),
        generation=GenerationSettings(backend="extractive", num_suggestions=3),
    )
    workspace = Workspace(settings)
    workspace.configure_threads(1)
    workspace.ensure_index()
    return workspace.assistant(generator=FakeGenerator(DRAFTS))


def fake_engine(tmp_path: Path) -> Engine:
    """The UI tests' deterministic fake."""
    return FakeAssistant()


ENGINES: dict[str, Callable[[Path], Engine]] = {"real": real_engine, "fake": fake_engine}


@pytest.fixture(params=[pytest.param("real", marks=pytest.mark.real_model), "fake"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each test runs once per engine."""
    yield ENGINES[request.param](tmp_path)


def run_turn(engine: Engine, cancel: CancelToken | None = None, n: int = 3) -> list[SuggestionUpdate]:
    """Analyse, retrieve and collect every suggestion update of one turn."""
    analysis = engine.analyze(PARCEL.text, [])
    passages = engine.retrieve(PARCEL.text, 3, [])
    return list(engine.suggest(PARCEL, [], analysis, passages, cancel or CancelToken(), n=n, seed=1))


def test_satisfies_the_protocol(engine: Engine) -> None:
    assert isinstance(engine, Engine)
    assert all(isinstance(w, str) for w in engine.warnings)
    info = engine.describe()
    assert isinstance(info, EngineInfo) and info.backend
    assert all(isinstance(v, str) and v for v in info.as_dict().values())


def test_analysis_answers_an_intent_the_engine_knows(engine: Engine) -> None:
    analysis = engine.analyze(PARCEL.text, [])
    assert isinstance(analysis, Analysis)
    assert analysis.intent.intent in engine.intent_labels
    probabilities = [s.probability for s in analysis.intent.top]
    assert probabilities == sorted(probabilities, reverse=True)


def test_retrieve_is_best_first_bounded_and_empty_for_an_empty_query(engine: Engine) -> None:
    hits = engine.retrieve(PARCEL.text, 2, [])
    assert 1 <= len(hits) <= 2 and all(isinstance(h, Passage) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].article_id == "missing-parcel"
    assert engine.retrieve("   ", 2, []) == []


def test_slot_zero_comes_first_finished_and_every_slot_ends_exactly_once(engine: Engine) -> None:
    updates = run_turn(engine)
    first = updates[0]
    assert first.slot == 0 and first.done and first.suggestion is not None and first.suggestion.text
    done_slots = [u.slot for u in updates if u.done]
    assert sorted(done_slots) == [0, 1, 2]  # exactly one final update per slot
    for slot in (1, 2):
        mine = [u for u in updates if u.slot == slot]
        assert mine[-1].done and not any(u.done for u in mine[:-1])  # nothing after a slot's final update
        final = mine[-1]
        assert (final.suggestion is not None and final.suggestion.text) or final.error


def test_asking_for_one_suggestion_gives_only_the_extractive_slot(engine: Engine) -> None:
    updates = run_turn(engine, n=1)
    assert [(u.slot, u.done) for u in updates] == [(0, True)]


def test_cancel_stops_streaming_within_one_update(engine: Engine) -> None:
    cancel = CancelToken()
    analysis = engine.analyze(PARCEL.text, [])
    passages = engine.retrieve(PARCEL.text, 3, [])
    after: list[SuggestionUpdate] = []
    for update in engine.suggest(PARCEL, [], analysis, passages, cancel, n=3, seed=1):
        if cancel.cancelled:
            after.append(update)
        elif update.slot == 1 and not update.done:
            cancel.cancel()  # mid-draft, as a new customer message would
    assert not any(not u.done for u in after)  # no new text once cancelled
    assert all(u.error == "cancelled" for u in after)


def test_attach_generator_accepts_a_model_or_none(engine: Engine) -> None:
    engine.attach_generator(None)
    engine.attach_generator(FakeGenerator(DRAFTS))
    assert engine.describe().backend
