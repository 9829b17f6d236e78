"""Which change a round keeps: the rule "keep a change only if held-out accuracy does not fall".

New concepts the regression's feedback does not flag join together if held-out accuracy, in-domain and
out-of-domain, does not fall; otherwise one at a time, most often weighted across CV folds first, each
kept only if it does not lower the accuracy reached so far. Then accepted concepts the feedback flags
(never weighted, flipping with the order, duplicating another) are dropped if that does not lower it
either and some concept is left; the plan without those drops is kept as the fallback a human may choose instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from tools.feedback import Change, ConceptSetScore


class Plan(BaseModel):
    keep: list[str]  # the concept set after the change
    score: ConceptSetScore  # its held-out score
    added: list[str]  # candidates that join
    rejected: dict[str, str]  # candidate -> why it does not join
    changes: list[Change]  # drops and merges of accepted concepts
    kept: dict[str, str]  # flagged accepted concepts kept anyway -> why
    fallback: Plan | None = None  # the best plan that drops no accepted concept


def _summary(score: ConceptSetScore, reference: ConceptSetScore) -> str:
    text = f"held-out in-domain {100 * reference.in_domain:.1f} -> {100 * score.in_domain:.1f}%"
    if score.ood is not None and reference.ood is not None:
        text += f", out-of-domain {100 * reference.ood:.1f} -> {100 * score.ood:.1f}%"
    return text


def choose(
    accepted: Sequence[str],
    candidates: Sequence[str],
    scored: ConceptSetScore,
    reference: ConceptSetScore,
    flagged: Sequence[Change],
    evaluate: Callable[[list[str]], ConceptSetScore],
    tolerance: float,
) -> Plan:
    """The plan for this round (see the module); ``scored`` is accepted + candidates, ``reference`` the
    accepted set's score, ``evaluate`` scores any other set."""
    by_id = {c.concept_id: c for c in flagged}
    scores = {tuple([*accepted, *candidates]): scored, tuple(accepted): reference}

    def score_of(keep: list[str]) -> ConceptSetScore:
        if tuple(keep) not in scores:
            scores[tuple(keep)] = evaluate(keep)
        return scores[tuple(keep)]

    rejected = {
        c: f"merged into {by_id[c].into}: {by_id[c].reason}" if by_id[c].into else by_id[c].reason
        for c in candidates
        if c in by_id
    }
    new = sorted((c for c in candidates if c not in by_id), key=lambda c: -scored.support.get(c, 0.0))
    keep, best = list(accepted), reference
    if new and score_of([*keep, *new]).no_worse_than(best, tolerance):
        keep, best = [*keep, *new], score_of([*keep, *new])
    else:
        for c in new:
            trial = score_of([*keep, c])
            if trial.no_worse_than(best, tolerance):
                keep, best = [*keep, c], trial
            else:
                rejected[c] = f"adding it lowered held-out accuracy ({_summary(trial, best)})"
    drops = [c for c in flagged if c.concept_id in accepted]
    without_drops = Plan(
        keep=keep,
        score=best,
        added=[c for c in new if c in keep],
        rejected=rejected,
        changes=[],
        kept={c.concept_id: f"dropping it lowered held-out accuracy ({c.reason})" for c in drops},
    )
    pruned = [c for c in keep if c not in by_id]
    if drops and pruned and score_of(pruned).no_worse_than(best, tolerance):
        return without_drops.model_copy(
            update={"keep": pruned, "score": score_of(pruned), "changes": drops, "kept": {}, "fallback": without_drops}
        )
    return without_drops
