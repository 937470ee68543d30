"""Settings -> the live engine: the one place that loads models, builds the index and finds the stores.

Why one object: the terminal app, every ``csassist`` command, the benchmarks and the tests all need
"the configured encoder", "the index (built if missing)", "the intent model", "the reply model" and
"the assistant made of them".  When each client assembled these itself, they drifted apart: one
command refitted the intent head with the *default* embedder while the app used the configured one,
and some commands never showed the config warnings.  A :class:`Workspace` wraps one
:class:`~csassist.settings.Settings` and answers each of those questions the same way for everyone
(harlequin's adapter ``connect()`` and nanochat's ``build_model`` play the same role there).

Loading never crashes the caller where a degraded engine is still useful: :meth:`Workspace.assistant`
records what is missing in the assistant's ``warnings`` (no index -> no passages, no intent model ->
no intents, no generator -> extractive replies only).  The lower-level loaders (:meth:`encoder`,
:meth:`intent_model`, :meth:`load_generator`, :meth:`build_index`) raise
:class:`~csassist.core.errors.CsassistError` with advice, for commands that want to fail loudly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from csassist import paths
from csassist.core.errors import CsassistError
from csassist.core.progress import ProgressCallback
from csassist.core.types import IntentExample
from csassist.settings import Settings, load_settings

if TYPE_CHECKING:  # pragma: no cover - heavy modules load only when a method needs them
    from csassist.core.engine import Engine
    from csassist.core.knowledge.embedder import Encoder
    from csassist.core.knowledge.index import IndexReport
    from csassist.core.knowledge.retrieval import Retriever
    from csassist.core.learn.store import ModelStore
    from csassist.core.pipeline import Assistant
    from csassist.core.reply.generation import Generator
    from csassist.core.understand.analysis import Analyzer
    from csassist.core.understand.intent import IntentModel


class _Configured:
    """Marker type of :data:`CONFIGURED`."""

    def __repr__(self) -> str:
        return "CONFIGURED"


#: ``Workspace.assistant(generator=CONFIGURED)``: load the reply model the settings ask for.
CONFIGURED: Final = _Configured()


@dataclass(frozen=True)
class IntentFit:
    """What happened to the intent head after an index build.

    ``status`` is ``fitted``, ``skipped`` (the KB has no intent examples) or ``failed``; ``reason``
    says why when it is not fitted; ``details`` holds the fit's scalar numbers (examples, intents,
    held-out accuracy, threshold...).
    """

    status: str
    reason: str = ""
    details: Mapping[str, int | float | str | bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON shape used by ``csassist index --json``: ``{"status", "reason"?, **details}``."""
        out: dict[str, object] = {"status": self.status}
        if self.reason:
            out["reason"] = self.reason
        out.update(self.details)
        return out


@dataclass(frozen=True)
class IndexBuild:
    """An index build and the intent head fitted beside it."""

    report: IndexReport
    intents: IntentFit
    oos: IntentFit = IntentFit("skipped", "not fitted")  # the out-of-scope detector beside the index

    def summary(self) -> str:
        """One line for a notification: chunks, articles, time, intent head."""
        r = self.report
        line = f"KB indexed: {r.chunks} chunks from {r.articles} articles in {r.seconds:.1f} s"
        if r.problems:
            line += f" ({len(r.problems)} file problems; see `csassist index`)"
        if self.intents.status == "fitted":
            line += "; intent model fitted"
        elif self.intents.status == "failed":
            line += f"; no intent model ({self.intents.reason})"
        return line


class Workspace:
    """One configuration turned into paths, models, the index and the assistant."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()

    # ------------------------------------------------------------------ configuration
    @property
    def warnings(self) -> tuple[str, ...]:
        """Problems found in config.toml (unknown keys, bad values); every client shows them."""
        return tuple(self.settings.warnings)

    def replace(self, **sections: object) -> Workspace:
        """A workspace whose settings differ in whole sections (``generation=...``, ``retrieval=...``)."""
        return Workspace(dataclasses.replace(self.settings, **sections))  # type: ignore[arg-type]

    def with_backend(self, backend: str) -> Workspace:
        """The same workspace with another reply-generation backend."""
        return self.replace(generation=dataclasses.replace(self.settings.generation, backend=backend))

    def configure_threads(self, threads: int | None = None) -> None:
        """Torch threads: ``threads``, else ``[generation] threads``, else one (fastest on 2 shared cores)."""
        from csassist.core.knowledge.embedder import configure_threads

        configure_threads(threads or self.settings.generation.threads or None)

    # ------------------------------------------------------------------ paths
    @property
    def kb_dir(self) -> Path:
        """The knowledge base in use (the bundled demo unless configured)."""
        return self.settings.kb_path()

    @property
    def index_dir(self) -> Path:
        """Where the index and the intent head fitted beside it live."""
        return self.settings.index_path()

    @property
    def models_dir(self) -> Path:
        """Converted generator weights, fine-tuned intent models and LoRA adapters."""
        return paths.models_dir()

    @property
    def intent_models_dir(self) -> Path:
        """The store of intent models (``csassist finetune --intents``, ``--from-log`` refits)."""
        return paths.intent_models_dir()

    @property
    def adapters_dir(self) -> Path:
        """The store of LoRA adapters for the reply model (``csassist finetune --from-log``)."""
        return paths.adapters_dir()

    def intent_store(self) -> ModelStore:
        """The versioned intent model store (promote / rollback / current; base: the index head)."""
        from csassist.core.learn.store import intent_store

        return intent_store(self.intent_models_dir)

    def adapter_store(self) -> ModelStore:
        """The versioned LoRA adapter store (promote / rollback / current; base: the bare generator)."""
        from csassist.core.learn.store import adapter_store

        return adapter_store(self.adapters_dir)

    @property
    def feedback_path(self) -> Path:
        """The feedback log."""
        return paths.feedback_db()

    @property
    def outbox_path(self) -> Path:
        """Where sent replies are appended."""
        return paths.outbox_file()

    # ------------------------------------------------------------------ models
    def encoder(self, name_or_path: str | None = None) -> Encoder:
        """The configured sentence encoder (``[retrieval] embedder``; loaded once per process).

        ``name_or_path`` overrides the setting (``csassist index --embedder``).  Raises
        :class:`~csassist.core.errors.ModelMissingError` with advice when it cannot be loaded.
        """
        from csassist.core.knowledge.embedder import load_encoder

        name = (name_or_path if name_or_path is not None else self.settings.retrieval.embedder).strip()
        # The ONNX export (float or int8 weights, [retrieval] precision) is cached beside the other models.
        retrieval = self.settings.retrieval
        return load_encoder(name or None, runtime=retrieval.runtime, cache_dir=self.models_dir / "onnx",
                            precision=retrieval.precision)

    def query_encoder(self, name_or_path: str | None = None) -> Encoder:
        """The configured encoder as customer messages are read: a long message pooled over its sentences.

        The engine, ``analyze``, ``eval`` and ``search`` read messages with it; KB chunks and training rows keep
        :meth:`encoder`'s whole-text vectors (:mod:`csassist.core.knowledge.message_vectors`).
        """
        from csassist.core.knowledge.message_vectors import SentencePassEncoder

        return SentencePassEncoder(self.encoder(name_or_path))

    def intent_model(self, encoder: Encoder | None = None, index_dir: Path | None = None) -> IntentModel:
        """The intent model the app uses: the promoted store version, else the head beside the index.

        The head is loaded with ``encoder`` (default: the configured one), so a head fitted with another
        embedder is refused with advice instead of answering nonsense.  Raises ``ModelMissingError``.
        """
        from csassist.core.learn.intent_promotion import load_intent_model

        return load_intent_model(
            index_dir or self.index_dir, encoder if encoder is not None else self.encoder(), store_root=self.intent_models_dir
        )

    def analyzer(self, intent_model: IntentModel | None) -> Analyzer:
        """Intent + entities + urgency + redaction with this company's order/tracking id patterns."""
        from csassist.core.understand.analysis import Analyzer

        company = self.settings.company
        return Analyzer(
            intent_model, order_patterns=company.order_patterns, tracking_patterns=company.tracking_patterns
        )

    def with_oos_detector(
        self, intent_model: IntentModel, encoder: Encoder, retriever: Retriever | None, index_dir: Path | None = None
    ) -> IntentModel:
        """``intent_model`` with the out-of-scope detector beside the index and the KB's vote on its ranking.

        Raises ``CsassistError`` when the detector is there but unusable (the caller reports it).
        """
        from csassist.core.understand.stack import attach_kb

        return attach_kb(intent_model, index_dir or self.index_dir, encoder, retriever)

    def open_retriever(self, encoder: Encoder | None = None, index_dir: Path | None = None) -> Retriever:
        """The KB index, validated against its manifest; ``encoder=None`` loads the one the index names.

        Raises :class:`~csassist.core.errors.IndexUnusableError` saying to re-index when it is missing,
        stale or built with another embedder.
        """
        from csassist.core.knowledge.retrieval import Retriever

        return Retriever.open(index_dir or self.index_dir, encoder)

    def load_generator(self) -> Generator | None:
        """The reply model the settings ask for (``None`` for the extractive backend).

        Raises :class:`~csassist.core.errors.CsassistError` with advice when it cannot be loaded.
        """
        from csassist.core.reply import generation

        return generation.load_generator(self.settings)

    # ------------------------------------------------------------------ index
    def index_missing(self, index_dir: Path | None = None) -> bool:
        """True when there is no index manifest yet (the first run on this machine)."""
        from csassist.core.knowledge.index import MANIFEST_FILE

        return not ((index_dir or self.index_dir) / MANIFEST_FILE).exists()

    def index_outdated(self, index_dir: Path | None = None) -> bool:
        """True when the index holds an out-of-scope detector of another format (an older csassist wrote it).

        Why: such a detector is refused at load, and the intent model's own cut-off answers instead with
        only a warning; re-indexing reuses every passage vector and refits it in seconds, so the app and
        :meth:`ensure_index` do it by themselves.  A missing or unreadable detector is not "outdated":
        loading it says what is wrong.
        """
        from csassist.core.knowledge.index import OOS_SUBDIR
        from csassist.core.understand.oos import of_another_format

        return of_another_format((index_dir or self.index_dir) / OOS_SUBDIR)

    def build_index(
        self,
        kb_dir: Path | None = None,
        index_dir: Path | None = None,
        *,
        encoder: Encoder | None = None,
        rebuild: bool = False,
        index_type: str | None = None,
        progress: ProgressCallback | None = None,
        kb_phrasings: bool = True,
    ) -> IndexBuild:
        """Index the KB (incrementally, atomically) and fit the intent head beside it.

        The head and the OOS detector learn from ``intents.csv`` plus, with ``kb_phrasings``, the titles
        and questions of single-intent articles (:mod:`csassist.core.learn.kb_examples`).

        Defaults: the configured KB, index directory, encoder and ``[retrieval] index_type``.  The
        intent head is optional: its failure is reported in :class:`IntentFit`, never raised.
        Raises ``KBError`` when the KB yields nothing and ``CsassistError`` for a bad index type.
        """
        from csassist.core.knowledge.index import INDEX_TYPES, build_index
        from csassist.core.knowledge.kb import load_kb
        from csassist.core.learn.kb_examples import with_kb_phrasings

        kind = index_type or self.settings.retrieval.index_type
        if kind not in INDEX_TYPES:
            raise CsassistError(f"unsupported index type {kind!r} in config.toml: use one of {', '.join(INDEX_TYPES)}")
        enc = encoder if encoder is not None else self.encoder()
        kb_root = kb_dir or self.kb_dir
        kb = load_kb(kb_root, max_file_bytes=self.settings.retrieval.max_kb_file_bytes)  # size limit from config
        report = build_index(
            kb_root, index_dir or self.index_dir, enc, rebuild=rebuild, index_type=kind, progress=progress, kb=kb
        )
        # Explicit step: the articles' own titles and questions join the labelled examples (kb_examples).
        examples = with_kb_phrasings(report.intent_examples, kb.articles) if kb_phrasings else report.intent_examples
        intents = self.fit_intents(examples, enc, report.out_dir)
        return IndexBuild(report, intents, self.fit_oos(kb_root, examples, enc, report.out_dir))

    def ensure_index(self, progress: ProgressCallback | None = None, *, rebuild: bool = False) -> IndexBuild | None:
        """Build the configured index when it is missing or outdated (or ``rebuild``); ``None`` when it was there."""
        if not rebuild and not self.index_missing() and not self.index_outdated():
            return None
        return self.build_index(rebuild=rebuild, progress=progress)

    def fit_intents(
        self, examples: Sequence[IntentExample], encoder: Encoder | None = None, index_dir: Path | None = None
    ) -> IntentFit:
        """Fit the intent head and its lexical vote into ``<index_dir>/intent``; never raises a CsassistError."""
        from csassist.core.knowledge.index import INTENT_SUBDIR
        from csassist.core.learn.index_intents import fit_index_intents

        if not examples:
            return IntentFit("skipped", "the KB has no intents.csv / intents.jsonl examples")
        enc = encoder if encoder is not None else self.encoder()
        try:
            result = fit_index_intents(list(examples), enc, (index_dir or self.index_dir) / INTENT_SUBDIR)
        except CsassistError as exc:
            return IntentFit("failed", str(exc))
        details = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
        return IntentFit("fitted", details=details)

    def fit_oos(
        self, kb_dir: Path, examples: Sequence[IntentExample], encoder: Encoder, index_dir: Path
    ) -> IntentFit:
        """Fit the out-of-scope detector into ``<index_dir>/oos`` (KB examples vs ``offtopic.csv``).

        Never raises a CsassistError; without off-topic examples a stale detector is removed, so the
        intent model's own cut-off applies instead of a detector fitted on another KB.
        """
        import shutil

        from csassist.core.knowledge.index import OOS_SUBDIR
        from csassist.core.learn.oos_fit import fit_oos_detector
        from csassist.core.understand.oos import load_off_topic

        target = index_dir / OOS_SUBDIR
        try:
            negatives = load_off_topic(kb_dir)
            if not negatives and not any(e.intent == "oos" for e in examples):
                shutil.rmtree(target, ignore_errors=True)
                return IntentFit("skipped", "the KB has no off-topic examples (offtopic.csv, intent=oos)")
            retriever = self.open_retriever(encoder, index_dir)
            result = fit_oos_detector([*examples, *negatives], encoder, target, kb_similarity=retriever.best_similarity)
        except CsassistError as exc:
            shutil.rmtree(target, ignore_errors=True)
            return IntentFit("failed", str(exc))
        return IntentFit("fitted", details={k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))})

    # ------------------------------------------------------------------ the engine
    def assistant(self, *, generator: Generator | None | _Configured = CONFIGURED) -> Assistant:
        """The engine, degraded rather than failing: what could not be loaded is in ``warnings``.

        ``generator=CONFIGURED`` loads the configured reply model (a failure means extractive replies
        and a warning); ``None`` leaves it out (the app attaches it later with
        ``attach_generator``); a :class:`Generator` is used as given.  Config warnings are not
        repeated here: they are :attr:`warnings` of the workspace.
        """
        from csassist.core.knowledge.encode_cache import MemoEncoder
        from csassist.core.pipeline import Assistant

        self.configure_threads()
        warnings: list[str] = []
        encoder: Encoder | None = None
        retriever: Retriever | None = None
        intent_model: IntentModel | None = None
        try:
            # One memo shared by the intent head and the retriever: each turn is encoded once.
            encoder = MemoEncoder(self.query_encoder())
        except Exception as exc:  # noqa: BLE001 - any failure means "no embedder", reported
            warnings.append(f"embedder unavailable ({exc}); no KB passages or intents")
        if encoder is not None:
            try:
                retriever = self.open_retriever(encoder)
            except Exception as exc:  # noqa: BLE001
                warnings.append(f"no usable KB index ({exc}); run `csassist index` to build it")
            try:
                intent_model = self.intent_model(encoder)
                if intent_model.report.get("fallback"):
                    warnings.append(str(intent_model.report["fallback"]))
            except Exception as exc:  # noqa: BLE001
                warnings.append(f"no intent model ({exc}); intents will not be shown")
            if intent_model is not None:
                try:  # the out-of-scope detector (verdict, reason, nearest examples) fitted beside the index
                    intent_model = self.with_oos_detector(intent_model, encoder, retriever)
                except Exception as exc:  # noqa: BLE001
                    warnings.append(f"out-of-scope detector unusable ({exc}); using the intent model's cut-off")
        gen = self.load_generator_or_warn(warnings) if isinstance(generator, _Configured) else generator
        return Assistant(
            self.settings,
            encoder=encoder,
            retriever=retriever,
            intent_model=intent_model,
            generator=gen,
            analyzer=self.analyzer(intent_model),
            warnings=warnings,
        )

    def load_generator_or_warn(self, warnings: list[str]) -> Generator | None:
        """:meth:`load_generator` with a failure turned into a warning (extractive-only mode)."""
        try:
            return self.load_generator()
        except Exception as exc:  # noqa: BLE001 - a missing model must never stop the app
            warnings.append(f"reply generator unavailable ({exc}); showing extractive suggestions only")
            return None


def warm_up(engine: Engine) -> None:
    """One throw-away analysis + search, so the first customer message does not pay torch's warm-up."""
    try:
        engine.analyze("hello, where is my order?", [])
        engine.retrieve("hello, where is my order?", 1)
    except Exception:  # noqa: BLE001 - warm-up is best effort; real calls report their own errors
        pass
