"""A multinomial naive Bayes text classifier in plain Python: small enough to read, and
quick enough to train on a few thousand examples in well under a second."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

WORD = re.compile(r"[a-z0-9']+")

# What the untrained model knows: a little English sentiment.
DEFAULT_EXAMPLES: List[Tuple[str, str]] = [
    ("I love this, it is wonderful and great", "positive"),
    ("what a fantastic, happy, excellent day", "positive"),
    ("good work, I really like it, amazing", "positive"),
    ("this is terrible and awful, I hate it", "negative"),
    ("bad, horrible, sad and disappointing", "negative"),
    ("the worst thing ever, poor and broken", "negative"),
]


def words(text: str) -> List[str]:
    return WORD.findall(text.lower())


class NaiveBayes:
    def __init__(self, counts: Dict[str, Dict[str, int]], docs: Dict[str, int], alpha: float):
        self.counts = counts  # label -> word -> count
        self.docs = docs  # label -> number of examples
        self.alpha = alpha
        self.vocabulary = {w for c in counts.values() for w in c}
        self.totals = {label: sum(c.values()) for label, c in counts.items()}

    @classmethod
    def fit(cls, examples: Iterable[Tuple[str, str]], alpha: float = 1.0) -> "NaiveBayes":
        counts: Dict[str, Counter] = defaultdict(Counter)
        docs: Counter = Counter()
        for text, label in examples:
            counts[label].update(words(text))
            docs[label] += 1
        if not docs:
            raise ValueError("no labelled examples to train on")
        return cls({k: dict(v) for k, v in counts.items()}, dict(docs), alpha)

    def scores(self, text: str) -> Dict[str, float]:
        """log P(label) + sum of log P(word | label), per label."""
        n = sum(self.docs.values())
        v = max(1, len(self.vocabulary))
        out = {}
        for label, counts in self.counts.items():
            score = math.log(self.docs[label] / n)
            denominator = self.totals[label] + self.alpha * v
            for w in words(text):
                score += math.log((counts.get(w, 0) + self.alpha) / denominator)
            out[label] = score
        return out

    def classify(self, text: str) -> str:
        scores = self.scores(text)
        return max(sorted(scores), key=lambda label: scores[label])

    def save(self, path: Path) -> None:
        data = {"alpha": self.alpha, "docs": self.docs, "counts": self.counts}
        path.write_text(json.dumps(data, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "NaiveBayes":
        data = json.loads(Path(path).read_text())
        return cls(data["counts"], data["docs"], float(data["alpha"]))
