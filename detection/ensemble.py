"""Several detectors' verdicts on one video -> one combined verdict that says what it rests on.

The combined p(fake) is the mean of the detectors' p(fake); it is decided by the same :class:`VerdictRules` as one
detector's (few detected faces or a score near the threshold give INCONCLUSIVE), with one more rule: when some
detectors say FAKE and others REAL, the combined verdict is INCONCLUSIVE (``disagreement``), whatever the mean.
"""

from __future__ import annotations

from typing import Any

from detection.predict import VerdictRules


def combine(results: list[dict[str, Any]], rules: VerdictRules | None = None) -> dict[str, Any]:
    """The combined verdict of per-detector results (:func:`detection.predict.analyse` ``result`` dicts).

    Returns ``{"verdict", "verdict_rule", "verdict_reason", "p_fake", "confidence", "detectors"}`` where
    ``detectors`` counts the verdicts (``{"REAL": 1, "FAKE": 1, ...}``).
    """
    if not results:
        raise ValueError("no detector result to combine")
    rules = rules or VerdictRules()
    p = sum(r["p_fake"] for r in results) / len(results)
    face_share = min(r["faces_detected_share"] for r in results)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    verdict, rule, reason = rules.decide(p, face_share)
    if counts.get("FAKE") and counts.get("REAL"):
        verdict, rule = "INCONCLUSIVE", "disagreement"
        reason = (f"the detectors disagree ({counts['FAKE']} say FAKE, {counts['REAL']} say REAL; mean p(fake) "
                  f"{p:.3f})")  # fmt: skip
    return {"verdict": verdict, "verdict_rule": rule, "verdict_reason": reason, "p_fake": round(p, 4),
            "confidence": round(100 * max(p, 1 - p), 1), "detectors": counts}  # fmt: skip
