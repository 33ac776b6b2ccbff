"""fti is a platform and fraud is an example: the engine's packages name no domain.

Every module of the `fti` namespace that runs a user's project (`fti`, `fti.features`,
`fti.flows`, `fti.connectors`, `fti.models`, `fti.infra`) is scanned, code, strings,
docstrings and comments alike, for the example projects' words: fraud, cards (as in payment
cards: card ids, per-card windows), transactions, preferences (the example; "preference"
alone is the pairwise task's name). The benchmarks (`fti.bench`) are left out on purpose:
they run the example projects by name. Two technical uses are allowed: a "model card", and
Redis' own `pipeline(transaction=True)` keyword.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from setup import FOLDERS  # noqa: E402

sys.path.remove(str(ROOT))

#: The packages that must not name a domain (all but the benchmarks).
SCANNED = sorted(folder for name, folder in FOLDERS.items() if name != "fti.bench")
#: Domain words of the examples.
DOMAIN = re.compile(
    r"fraud|transactions?\b|preferences|card_?id|\bcard-\w|per[- ]card|card transactions?"
    r"|(?:payment|credit|debit) cards?|(?<!model )\bcards\b",
    re.IGNORECASE,
)
#: Technical phrases that contain a domain word but are not about one.
ALLOWED = re.compile(r"model cards?\b|pipeline\(transaction=True\)", re.IGNORECASE)


def domain_words(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line of `text` that names a domain.

    >>> domain_words("x = 1\\n# score each card transaction\\nwrite the model card here")
    [(2, '# score each card transaction')]
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if DOMAIN.search(ALLOWED.sub("", line)):
            found.append((number, line.strip()))
    return found


def test_the_scanner_sees_each_domain_word_and_allows_the_technical_ones() -> None:
    for line in ("is_fraud = 1", "TRANSACTIONS", "a transaction", "examples/preferences",
                 "card_id", "cardId", "per-card windows", "card-1", "credit cards",
                 "all cards", "card transactions"):
        assert domain_words(line), line
    for line in ("write_model_card(path)", "the model card of v2", "model cards",
                 "pipe = client.pipeline(transaction=True)", 'task="preference"',
                 "discard the rest", "cardinality", "CARD_FILE", "the card's plots"):
        assert not domain_words(line), line


@pytest.mark.parametrize("folder", SCANNED)
def test_the_engine_packages_name_no_domain(folder: str) -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line}"
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 for number, line in domain_words(path.read_text())]
    assert not offenders, "domain words in fti's packages:\n" + "\n".join(offenders)
