"""Entity and redaction benchmark.

1. Bitext test split (../shared/datasets/bitext/test.csv, 902 rows): precision/recall of order and
   invoice numbers against the annotated spans (a prediction counts when it overlaps a gold span of
   the same type; value accuracy is reported too).  Target >= 0.95 both.
2. A generated PII corpus (seeded templates with emails, phones, card numbers and IBANs in many
   formats): the share of items left unredacted by ``redact_for_storage`` (target 0), the share the
   precise detectors type correctly, and the share of order ids / dates / amounts that survive
   redaction (over-redaction check).

    python bench/entities.py [--n 3000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from csassist.core.understand.entities import extract_entities  # noqa: E402
from csassist.core.understand.redact import redact_for_storage  # noqa: E402

BITEXT = ROOT.parent / "shared" / "datasets" / "bitext" / "test.csv"
RESULTS = ROOT / "bench" / "results" / "entities.json"
TYPES = ("order_id", "invoice_id")


def _norm(value: str) -> str:
    return value.lstrip("#").lstrip("0").upper()


def bitext() -> dict:
    """Span-overlap precision/recall of order and invoice numbers on the Bitext test split."""
    rows = list(csv.DictReader(BITEXT.open(encoding="utf-8")))
    stats = {t: {"gold": 0, "pred": 0, "tp_pred": 0, "tp_gold": 0, "value_ok": 0} for t in TYPES}
    errors: list[dict] = []
    t0 = time.perf_counter()
    for r in rows:
        text = r["instruction"]
        gold = []
        if r["entity_type"] in TYPES:
            gold.append((r["entity_type"], int(r["start_offset"]), int(r["end_offset"]), r["entity_value"]))
        preds = [e for e in extract_entities(text) if e.type in TYPES]
        for t, s, e, _v in gold:
            stats[t]["gold"] += 1
            hit = [p for p in preds if p.type == t and p.start < e and p.end > s]
            if hit:
                stats[t]["tp_gold"] += 1
                # Bitext's value drops leading zeros and has a few annotation slips; compare loosely.
                if _norm(hit[0].value) in (_norm(_v), _norm(text[s:e].strip(", "))):
                    stats[t]["value_ok"] += 1
            elif len(errors) < 20:
                errors.append({"missed": t, "text": text})
        for p in preds:
            stats[p.type]["pred"] += 1
            if any(p.type == t and p.start < e and p.end > s for t, s, e, _v in gold):
                stats[p.type]["tp_pred"] += 1
            elif len(errors) < 20:
                errors.append({"false_positive": p.type, "span": p.text, "text": text})
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(rows))
    out: dict = {"rows": len(rows), "ms_per_message": round(ms, 3), "errors_sample": errors}
    for t, s in stats.items():
        out[t] = {
            "gold": s["gold"],
            "predicted": s["pred"],
            "precision": s["tp_pred"] / s["pred"] if s["pred"] else None,
            "recall": s["tp_gold"] / s["gold"] if s["gold"] else None,
            "value_accuracy": s["value_ok"] / s["tp_gold"] if s["tp_gold"] else None,
        }
    return out


# ------------------------------------------------------------------------------------------ PII corpus


def _luhn(prefix: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(prefix + "0")):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return prefix + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    country = rng.choice(["NL", "DE", "GB", "FR", "BE", "ES"])
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
        rng.choice("0123456789") for _ in range(10))
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - number % 97:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _phone(rng: random.Random) -> str:
    d = lambda n: _digits(rng, n)  # noqa: E731
    return rng.choice([
        f"+31 6 {d(8)}", f"+31 (0)6-{d(4)} {d(4)}", f"+31612{d(6)}", f"06-{d(8)}", f"06 {d(4)} {d(4)}",
        f"020 {d(3)} {d(4)}", f"+44 7{d(3)} {d(6)}", f"+44 (0)20 {d(4)} {d(4)}", f"07{d(3)} {d(6)}",
        f"+1 ({rng.randint(200, 999)}) {d(3)}-{d(4)}", f"({rng.randint(200, 999)}) {d(3)}-{d(4)}",
        f"{rng.randint(200, 999)}-{d(3)}-{d(4)}", f"+1-{rng.randint(200, 999)}-{d(3)}-{d(4)}", f"0044 20 {d(4)} {d(4)}",
        f"+49 30 {d(8)}", f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
    ])


def _card(rng: random.Random) -> str:
    n = rng.choice([16, 16, 16, 15, 13, 19])
    digits = _luhn(rng.choice("3456") + _digits(rng, n - 2))
    sep = rng.choice(["", " ", "-"])
    if n == 15 and sep:
        return f"{digits[:4]}{sep}{digits[4:10]}{sep}{digits[10:]}"
    return sep.join(digits[i : i + 4] for i in range(0, n, 4))


def _email(rng: random.Random) -> str:
    first = rng.choice(["jan", "anna", "p.de.vries", "mo_ali", "sarah.o'neil", "kim+shop", "j", "li.wei88", "ÉMILE"])
    dom = rng.choice(["example.com", "mail.co.uk", "hotmail.nl", "sub.domain.org", "x.io", "gmx.de"])
    return f"{first.replace(chr(39), '')}{rng.randint(0, 999) if rng.random() < 0.5 else ''}@{dom}"


TEMPLATES = [
    "Hi, you can reach me on {x}. My order LK-{o} still hasn't arrived.",
    "my email is {x} pls update the invoice INV-2026-{o}",
    "Card used: {x} (paid €49,95 on 12 March)",
    "Refund to {x} please, order #{o}",
    "{x}",
    "Call me back at {x}!!! third time asking about order {o}",
    "I paid with card number {x}, expiry 04/28, yesterday.",
    "Bank details for the refund: {x} (name J. Smith)",
    "contact: {x}; tracking LKP{o}1234NL",
    "Hallo, mijn nummer is {x}, bestelling {o}.",
]


def pii_corpus(n: int, seed: int = 20261128) -> dict:
    """Generate ``n`` messages with one PII item each; measure leaks, detection and over-redaction."""
    rng = random.Random(seed)
    makers = {"email": _email, "phone": _phone, "card_number": _card, "iban": _iban}
    per = {k: {"n": 0, "leaked": 0, "detected": 0} for k in makers}
    kept = {"order_id": [0, 0]}
    leaks: list[str] = []
    for i in range(n):
        kind = list(makers)[i % len(makers)]
        item = makers[kind](rng)
        order = _digits(rng, 6)
        text = rng.choice(TEMPLATES).format(x=item, o=order)
        out = redact_for_storage(text)
        per[kind]["n"] += 1
        digits = re.sub(r"\D", "", item)
        leaked = item in out or (kind != "email" and len(digits) >= 7 and digits[-7:] in re.sub(r"\D", "", out))
        if kind == "email":
            leaked = leaked or item.split("@")[0] + "@" in out
        if leaked:
            per[kind]["leaked"] += 1
            if len(leaks) < 10:
                leaks.append(text)
        if any(e.type == kind for e in extract_entities(text)):
            per[kind]["detected"] += 1
        if order in text:
            kept["order_id"][0] += 1
            kept["order_id"][1] += order in out
    total = sum(v["n"] for v in per.values())
    leaked_total = sum(v["leaked"] for v in per.values())
    return {
        "messages": n,
        "share_unredacted": leaked_total / total,
        "by_type": {k: {"n": v["n"], "share_unredacted": v["leaked"] / v["n"], "detected_as_type": v["detected"] / v["n"]}
                    for k, v in per.items()},
        "order_ids_kept": kept["order_id"][1] / max(1, kept["order_id"][0]),
        "leak_examples": leaks,
    }


def main() -> int:
    """Run both parts, print the tables, write bench/results/entities.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="generated PII messages")
    args = parser.parse_args()
    results = {"bitext": bitext(), "pii": pii_corpus(args.n),
               "targets": {"precision": 0.95, "recall": 0.95, "share_unredacted": 0.0}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    b = results["bitext"]
    print(f"Bitext test split ({b['rows']} messages, {b['ms_per_message']} ms/message)")
    print(f"{'type':<12} {'gold':>5} {'pred':>5} {'precision':>9} {'recall':>7} {'value acc':>9}")
    for t in TYPES:
        r = b[t]
        print(f"{t:<12} {r['gold']:>5} {r['predicted']:>5} {r['precision']:>9.3f} {r['recall']:>7.3f} "
              f"{r['value_accuracy']:>9.3f}")
    p = results["pii"]
    print(f"\nGenerated PII corpus ({p['messages']} messages): share left unredacted {p['share_unredacted']:.4f}, "
          f"order ids kept {p['order_ids_kept']:.3f}")
    print(f"{'type':<12} {'n':>5} {'unredacted':>10} {'detected':>9}")
    for k, v in p["by_type"].items():
        print(f"{k:<12} {v['n']:>5} {v['share_unredacted']:>10.4f} {v['detected_as_type']:>9.3f}")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
