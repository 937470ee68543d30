"""Intent model versions: which one is in use, save, promote when not worse, roll back, refit the one in use.

Every intent model that is not the index head is a version of the one intent model store
(:func:`csassist.core.learn.store.intent_store`), so ``--rollback`` means the same thing whatever
produced it (a history stack: back to the version promoted before, past the first one to the index
head).  Two producers:

* :func:`finetune_intents` — ``csassist finetune --intents``: train (``--method full``:
  :mod:`~csassist.core.learn.intent_finetune`; ``--method contrastive``: :mod:`~csassist.core.learn.
  intent_contrastive`, chosen by the type of the config), save a version, promote it unless it scores worse than the promoted version on
  the same validation rows (``force`` promotes anyway).
* :func:`refit_with_corrections` — ``csassist finetune --from-log``: the agents' intent corrections
  are added to the KB's examples and a head is refitted **on the encoder of the model in use** (a
  promoted fine-tuned body, else the configured embedder), saved as a version and promoted.  So the
  refit is what the app uses next, never shadowed by an older promoted model, and never fitted on an
  embedder the app does not load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from csassist.core.errors import CsassistError, ModelMissingError
from csassist.core.learn.intent_contrastive import ContrastiveConfig, train_contrastive_model
from csassist.core.learn.intent_finetune import FinetuneConfig, ProgressCallback, train_intent_model
from csassist.core.learn.intent_head import fit_head
from csassist.core.learn.log_pairs import norm
from csassist.core.learn.store import ModelStore, Version, intent_store
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_STORE, IntentModel, SecondOpinion
from csassist.core.understand.intent_format import load_head, read_model, write_model

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder

#: Scalar report entries copied into the store's version metadata (what `csassist models` lists).
HEADLINE = ("kind", "val_accuracy", "val_macro_f1", "heldout_accuracy", "threshold", "oos_recall", "intents",
            "labels", "corrections_used", "train_seconds", "stopped_by_budget")


def save_version(model: IntentModel, store: ModelStore, *, parent: str | None = None, note: str = "") -> Version:
    """Write ``model`` as a new store version; afterwards its id, origin and version name say so.

    The full training report goes to ``metrics.json`` beside the model; the headline numbers to the
    version's metadata.
    """
    kind = str(model.report.get("kind") or "model")
    base = str(model.report.get("base") or model.report.get("encoder") or model.encoder.model_id)
    headline = {k: model.report.get(k) for k in HEADLINE if k in model.report}
    with store.save(base=base, parent=parent, metrics=headline, note=note) as draft:
        model.model_id = f"{kind}:{draft.name}"
        model.version = draft.name
        model.origin = ORIGIN_STORE
        model.report = {**model.report, "version": draft.name}
        write_model(model, draft.path)
        (draft.path / "metrics.json").write_text(json.dumps(model.report, indent=2, default=str), encoding="utf-8")
    assert draft.version is not None
    return draft.version


def finetune_intents(
    train_examples: Sequence[IntentExample],
    val_examples: Sequence[IntentExample] | None = None,
    config: FinetuneConfig | ContrastiveConfig | None = None,
    *,
    out_root: Path | None = None,
    progress: ProgressCallback | None = None,
    promote_model: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Fine-tune, save a version, and (normally) promote it; return the report (also in ``metrics.json``).

    A model that is worse on this validation set than the currently promoted version is saved but
    not promoted unless ``force``.
    """
    if isinstance(config, ContrastiveConfig):
        trained = train_contrastive_model(train_examples, val_examples, config, progress=progress)
    else:
        trained = train_intent_model(train_examples, val_examples, config, progress=progress)
    model = trained.model
    store = intent_store(out_root)
    current = store.current()
    method = "contrastive" if isinstance(config, ContrastiveConfig) else "full"
    version = save_version(model, store, parent=current.name if current else None,
                           note=f"finetune --intents --method {method}")
    report = dict(model.report)
    report.update({"model_dir": str(version.path), "promoted": False, "previous_val_accuracy": None})
    if not promote_model:
        return report
    better = True
    val_texts = [e.text for e in trained.val_in]
    if current is not None and val_texts and not force:
        try:
            old = read_model(current.path, origin=ORIGIN_STORE, version=current.name)
        except ModelMissingError:
            old = None  # an unreadable promoted model is no reason to keep it
        if old is not None:
            preds = old.predict_batch(val_texts)
            old_acc = float(np.mean([bool(p.top) and p.top[0].intent == e.intent for p, e in zip(preds, trained.val_in, strict=True)]))
            report["previous_val_accuracy"] = old_acc
            better = report["val_accuracy"] is not None and report["val_accuracy"] >= old_acc
    if better or force:
        store.promote(version.name)
        report["promoted"] = True
    return report


def load_intent_model(index_dir: Path, encoder: Encoder | None = None, *, store_root: Path | None = None) -> IntentModel:
    """The intent model the app uses: the promoted store version, else the head beside the index.

    A promoted version that references another embedder than ``encoder`` (the configuration changed
    since) is skipped for the index head, and the fallback is said in ``report["fallback"]`` so that
    callers can show it; with neither, :class:`ModelMissingError` telling the user to run
    ``csassist index``.
    """
    fallback = ""
    current = intent_store(store_root).current()
    if current is not None:
        try:
            return read_model(current.path, encoder, origin=ORIGIN_STORE, version=current.name)
        except ModelMissingError as exc:
            fallback = f"promoted intent model {current.name} not usable ({exc}); using the index head"
    head_dir = Path(index_dir) / "intent"
    if (head_dir / "meta.json").exists():
        model = load_head(head_dir, encoder)
        if fallback:
            model.report = {**model.report, "fallback": fallback}
        return model
    raise ModelMissingError(
        fallback or f"no intent model in {head_dir}: run `csassist index` to fit one from kb/intents.csv"
    )


def rollback(out_root: Path | None = None) -> Version | None:
    """Return to the intent model promoted before the current one; ``None`` means the index head."""
    return intent_store(out_root).rollback()


def corrections_from_events(events: Iterable[dict[str, Any]]) -> list[IntentExample]:
    """The agents' intent corrections as examples; the latest correction of a text wins.

    A correction is an event whose ``intent_correction`` is set and whose ``customer_text``
    (redacted) was logged.
    """
    corrections = [
        IntentExample(text=str(e["customer_text"]), intent=str(e["intent_correction"]), source="feedback-log")
        for e in events
        if e.get("intent_correction") and (e.get("customer_text") or "").strip()
    ]
    seen: set[str] = set()
    unique: list[IntentExample] = []
    for example in reversed(corrections):
        key = norm(example.text).lower()
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def refit_with_corrections(
    events: Iterable[dict[str, Any]],
    kb_examples: Sequence[IntentExample],
    *,
    index_dir: Path,
    encoder: Encoder,
    store_root: Path | None = None,
) -> dict[str, Any] | None:
    """Refit the head of the model in use with the corrections, save it as a version and promote it.

    ``encoder`` is the configured embedder (what the app loads).  The model in use is found exactly as
    the app finds it (:func:`load_intent_model`); its encoder is kept frozen and a new head is fitted
    on the KB's examples plus the corrections (a corrected text replaces the KB row with the same
    text).  Returns ``None`` when there are no corrections (nothing to learn), else the head's report
    plus ``corrections_used``, ``version``, ``model_dir``, ``built_on`` (which model it refined) and
    ``model`` (the new model's id, what ``analyze`` will now name).
    """
    corrections = corrections_from_events(events)
    if not corrections:
        return None
    try:
        in_use: IntentModel | None = load_intent_model(index_dir, encoder, store_root=store_root)
    except CsassistError:
        in_use = None  # no usable model yet: the refit starts from the configured embedder
    body = in_use.encoder if in_use is not None else encoder
    corrected = {norm(e.text).lower() for e in corrections}
    base_examples = [e for e in kb_examples if norm(e.text).lower() not in corrected]
    model = fit_head([*base_examples, *corrections], body, origin=ORIGIN_STORE)
    if in_use is not None and in_use.second_opinion is not None:
        # The second opinion learns the corrections too (same rows, the configured embedder, same weight).
        frozen = fit_head([*base_examples, *corrections], encoder)
        model = dataclasses.replace(model, second_opinion=SecondOpinion(encoder, frozen.head, in_use.second_opinion.weight))
    built_on = in_use.describe() if in_use is not None else f"the configured embedder {encoder.model_id}"
    model.report = {**model.report, "kind": "refit", "corrections_used": len(corrections), "built_on": built_on}
    store = intent_store(store_root)
    parent = in_use.version if in_use is not None else None
    version = save_version(model, store, parent=parent, note=f"head refitted with {len(corrections)} correction(s)")
    store.promote(version.name)
    return {**model.report, "model_dir": str(version.path), "model": model.model_id, "promoted": True}
