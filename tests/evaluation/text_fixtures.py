"""Generated support tickets: one sentence each about one of four topics."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOPICS = {
    "billing": ["invoice", "charge", "refund", "card", "payment", "receipt", "tax"],
    "shipping": ["parcel", "courier", "delivery", "tracking", "warehouse", "postage"],
    "login": ["password", "account", "email", "token", "session", "username"],
    "search": ["query", "results", "filter", "ranking", "keyword", "spelling"],
}
VERBS = ["shows", "breaks", "needs", "misses", "updates", "repeats", "delays"]
PER_TOPIC = 40


def ticket_table(per_topic: int = PER_TOPIC) -> pd.DataFrame:
    """Return columns ``ticket`` (text), ``topic`` and ``priority`` (1-3)."""
    rng = np.random.default_rng(0)
    rows = []
    for topic, words in TOPICS.items():
        for _ in range(per_topic):
            w = rng.choice(words, 5, replace=False)
            verb = rng.choice(VERBS)
            text = (
                f"The {w[0]} {verb} the {w[1]} and the {w[2]} after the {w[3]} {w[4]}"
            )
            rows.append(
                {"ticket": text, "topic": topic, "priority": int(rng.integers(1, 4))}
            )
    return pd.DataFrame(rows)


def with_shouted_copies(tickets: pd.DataFrame) -> pd.DataFrame:
    """Append every tenth ticket again in capitals with an exclamation mark."""
    copies = tickets.iloc[::10].copy()
    copies["ticket"] = copies["ticket"].str.upper() + "!"
    return pd.concat([tickets, copies], ignore_index=True)
