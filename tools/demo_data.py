"""A small multi-domain demo set that whypref writes itself (no downloaded data needed).

Responses are assembled from parts whose presence is known (structure, specifics, a code block, a
safety note, length), and two mechanisms label them by hidden rules: ``human`` rewards structure
everywhere plus one domain-specific property per domain; ``judge-verbose`` mostly rewards length and
is queried in both orders with some position bias. A good explanation recovers those rules.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tools.pairs import Label, LabeledPair, Mechanism, MechanismKind, Pair, Verdict, turns

_QUERIES = {
    "cooking": [
        ("How do I make a simple tomato sauce?", "tomatoes", "Simmer crushed tomatoes with garlic and olive oil"),
        (
            "How should I cook rice so it is not sticky?",
            "rice",
            "Rinse the rice, then cook it with the right amount of water",
        ),
        ("What is a quick way to make pancakes?", "pancakes", "Whisk flour, milk and eggs, then fry small rounds"),
        (
            "How do I roast vegetables evenly?",
            "vegetables",
            "Cut the vegetables to one size and roast them on a hot tray",
        ),
        ("How can I make a basic vinaigrette?", "vinaigrette", "Shake oil, vinegar, mustard and salt in a jar"),
        (
            "How do I boil an egg with a soft yolk?",
            "eggs",
            "Lower the eggs into boiling water and cool them after a few minutes",
        ),
        ("What is the best way to cook a steak at home?", "steak", "Sear the steak in a very hot pan and let it rest"),
        ("How do I bake a loaf of banana bread?", "banana bread", "Mash ripe bananas into a simple batter and bake it"),
    ],
    "coding": [
        ("How do I reverse a list in Python?", "reverse", "Use slicing with a negative step or the reverse method"),
        ("How can I read a file line by line in Python?", "read", "Open the file in a with block and loop over it"),
        (
            "How do I remove duplicates from a list but keep the order?",
            "dedupe",
            "Use a dict to keep the first occurrence of each item",
        ),
        ("How do I count words in a string?", "count", "Split the string and count the pieces with a Counter"),
        ("How can I sort a list of dictionaries by a key?", "sort", "Pass a key function to sorted"),
        ("How do I check if a string is a palindrome?", "palindrome", "Compare the string with its reverse"),
        ("How do I merge two dictionaries?", "merge", "Use the | operator or unpack both into a new dict"),
        ("How do I get the current date in Python?", "date", "Use date.today() from the datetime module"),
    ],
    "health": [
        ("How can I sleep better at night?", "sleep", "Keep a regular schedule and a dark, cool bedroom"),
        (
            "What can I do about a mild headache?",
            "headache",
            "Drink water, rest in a quiet room and take a break from screens",
        ),
        ("How much water should I drink each day?", "water", "Most adults do well with around two litres a day"),
        ("How do I start running as a beginner?", "running", "Alternate short runs with walking and build up slowly"),
        ("What helps with a sore throat?", "sore throat", "Warm drinks, honey and rest usually help"),
        ("How can I reduce stress at work?", "stress", "Take short breaks, plan your day and talk to someone"),
        (
            "Is it fine to skip breakfast?",
            "breakfast",
            "For most healthy adults it is fine if the day's meals are balanced",
        ),
        ("How can I improve my posture at a desk?", "posture", "Set the screen at eye level and keep your feet flat"),
    ],
}

_CODE = {
    "reverse": "items = [1, 2, 3]\nreversed_items = items[::-1]",
    "read": "with open('notes.txt') as handle:\n    for line in handle:\n        print(line.rstrip())",
    "dedupe": "unique = list(dict.fromkeys(items))",
    "count": "from collections import Counter\ncounts = Counter(text.split())",
    "sort": "rows = sorted(rows, key=lambda row: row['age'])",
    "palindrome": "def is_palindrome(s):\n    return s == s[::-1]",
    "merge": "merged = first | second",
    "date": "from datetime import date\ntoday = date.today()",
}

_SITUATIONS = [
    "as a beginner",
    "with little time",
    "on a budget",
    "for a family",
    "on a weekday evening",
    "without special tools",
    "for the first time",
    "at work",
    "while travelling",
    "for a friend",
    "in a small space",
    "step by step",
]

# Hidden rules: weights of each part in the log-odds of preferring a response.
HUMAN_WEIGHTS = {
    "shared": {"structure": 1.6, "detail": 0.4},
    "cooking": {"specifics": 1.8},
    "coding": {"code": 2.0},
    "health": {"safety": 1.8},
}
JUDGE_WEIGHTS = {"detail": 2.2, "structure": 0.5}
# The concepts that show each part: measured ones, and for the safety note a phrase mining finds.
PART_CONCEPTS = {
    "structure": ("List Formatting",),
    "detail": ("Length",),
    "specifics": ("Units", "Numbers"),
    "code": ("Code Blocks", "Code Language Tag"),
    "safety": ("doctor",),
}


def planted_parts(mechanism: str, domain: str) -> list[str]:
    """The parts a demo mechanism's hidden rule rewards in a domain."""
    weights = HUMAN_WEIGHTS["shared"] | HUMAN_WEIGHTS[domain] if mechanism == "human" else JUDGE_WEIGHTS
    return [part for part, weight in weights.items() if weight > 0]


def shows_part(concept_name: str, part: str) -> bool:
    """Whether a concept (by name) shows a demo part."""
    name = concept_name.lower()
    return any(name == c.lower() or (part == "safety" and c in name) for c in PART_CONCEPTS[part])


DEMO_MECHANISMS = [
    Mechanism(name="human", kind=MechanismKind.HUMAN, description="simulated voters (demo)"),
    Mechanism(name="judge-verbose", kind=MechanismKind.LLM_JUDGE, description="simulated length-loving judge (demo)"),
]


@dataclass(frozen=True)
class _Parts:
    structure: bool  # steps as a numbered list
    detail: bool  # a longer explanation
    specifics: bool  # quantities and times
    code: bool  # a code block
    safety: bool  # advice to see a professional


def _draw(seed: str, k: int) -> list[bool]:
    digest = hashlib.sha256(seed.encode()).digest()
    return [bool(digest[i] & 1) for i in range(k)]


def _response(domain: str, topic: str, gist: str, parts: _Parts) -> str:
    steps = [gist + ".", "Check the result and adjust.", "Keep notes so the next attempt is easier."]
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)) if parts.structure else " ".join(steps)
    # Specifics and the safety note are sentences of the body, not paragraphs of their own, so that
    # each part shows in one measured property (paragraph counts would otherwise stand in for them).
    if parts.specifics and domain == "cooking":
        body += "\nUse 400 g of the main ingredient, 2 tablespoons of oil and about 15 minutes over medium heat."
    if parts.safety and domain == "health":
        body += "\nIf this does not improve within a few days, please see a doctor."
    text = [body]
    if parts.detail:  # neutral words: the sentiment lexicon should not see the extra length
        text.append(
            f"Some background on {topic}: the method relies on small steps, taken in the same order each "
            "time, one after another, with each step finished before the next one starts. Changing one "
            "thing at a time shows which step made the difference."
        )
    if parts.code and domain == "coding":
        text.append(f"```python\n{_CODE[topic]}\n```")
    return "\n\n".join(text)


def _logit(parts: _Parts, weights: dict[str, float]) -> float:
    return sum(w for name, w in weights.items() if getattr(parts, name, False))


def demo_pairs(per_domain: int = 8) -> list[LabeledPair]:
    """``per_domain`` pairs in each of three domains, with human and judge labels. Each domain has 8
    queries; beyond 8 pairs a query comes back with other responses (a new draw of their parts)."""
    items = []
    for domain, queries in _QUERIES.items():
        for k in range(per_domain):
            query, topic, gist = queries[k % len(queries)]
            round_ = k // len(queries)
            if round_:  # a new situation: a query of its own, so splits grouped by query have many groups
                situation = _SITUATIONS[(round_ - 1) % len(_SITUATIONS)]
                suffix = f" #{(round_ - 1) // len(_SITUATIONS) + 1}" if round_ > len(_SITUATIONS) else ""
                query, gist = f"{query[:-1]} {situation}?{suffix}", f"{gist} ({situation})"
            flags = _draw(domain + query + (f"#{round_}" if round_ else ""), 12)
            a, b = _Parts(*flags[:5]), _Parts(*flags[5:10])
            if a == b:  # identical parts would make an uninformative pair
                b = _Parts(not a.structure, a.detail, a.specifics, a.code, a.safety)
            human_w = HUMAN_WEIGHTS["shared"] | HUMAN_WEIGHTS[domain]
            human = _verdict(_logit(a, human_w) - _logit(b, human_w), flags[10])
            judge_margin = _logit(a, JUDGE_WEIGHTS) - _logit(b, JUDGE_WEIGHTS)
            # Position bias: when the judge sees nothing to choose between, it picks whatever is shown first.
            judge_ab = _verdict(judge_margin, coin=True)
            judge_ba = _verdict(judge_margin, coin=False)
            pair = Pair(
                query=turns(query),
                response_a=_response(domain, topic, gist, a),
                response_b=_response(domain, topic, gist, b),
                domain=domain,
                source="demo",
                metadata={"parts_a": a.__dict__, "parts_b": b.__dict__},
            )
            items.append(
                LabeledPair(
                    pair=pair,
                    labels=[
                        Label(mechanism="human", verdict=human),
                        Label(mechanism="judge-verbose", verdict_ab=judge_ab, verdict_ba=judge_ba),  # type: ignore[call-arg]
                    ],
                )
            )
    return items


def _verdict(margin: float, coin: bool) -> Verdict:
    """The side with the higher score; an exact draw is settled by the coin (a forced choice)."""
    if margin > 0:
        return Verdict.A
    if margin < 0:
        return Verdict.B
    return Verdict.A if coin else Verdict.B


def write_demo_set(path: Path, per_domain: int = 8) -> int:
    """Write the demo set as whypref JSON Lines (importable with ``--format whypref``)."""
    items = demo_pairs(per_domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n")
    return len(items)
