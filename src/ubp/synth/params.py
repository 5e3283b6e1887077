"""World sizes per scale and the fixed calendar: everything `generate` needs besides the seed."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from ubp.errors import UsageError

INPUT_DAYS = 150  # history before the train-target window
TARGET_DAYS = 28  # train + validation target windows (2 × 14)
N_DAYS = INPUT_DAYS + TARGET_DAYS
START = dt.datetime(2022, 6, 1)  # day 0, 00:00:00
CHUNK_USERS = 20_000  # users simulated and written together; fixed so the seed alone fixes the output
N_TOPICS = 24
ENGAGED_WITH_INPUT = 0.9  # measured share of engaged users with an input-window event
RELEVANT_SHARE_CLIENTS = 0.8  # `--clients N`: about this share of users is relevant

# scale -> (users, relevant clients)
SCALES: dict[str, tuple[int, int]] = {
    "tiny": (2_500, 2_000),
    "small": (25_000, 20_000),
    "medium": (250_000, 200_000),
    "full": (18_700_000, 1_000_000),
}


@dataclass(frozen=True)
class WorldParams:
    """Sizes of one world; the catalogue grows with the number of users, capped at the real sizes."""

    n_users: int
    n_relevant: int
    n_categories: int
    n_skus: int
    n_generic_urls: int
    seed: int
    complements: float = 0.0  # chance a purchase brings a follow-up session about its category's complement

    @classmethod
    def for_scale(cls, scale: str | None, n_users: int | None, seed: int, complements: float = 0.0) -> "WorldParams":
        """`n_users` wins over `scale`; sizes of the catalogue follow from the number of users."""
        if seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {seed}")
        if not 0.0 <= complements < 1.0:
            raise UsageError(f"complements is a chance in [0, 1), got {complements}")
        if n_users is not None:
            if n_users < 1:
                raise UsageError(f"the number of users must be positive, got {n_users}")
            n_relevant = max(1, round(RELEVANT_SHARE_CLIENTS * n_users))
        elif scale in SCALES:
            n_users, n_relevant = SCALES[scale]
        else:
            raise UsageError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)} or give a number of users")
        n_skus = int(min(1_300_000, max(2_000, 1.2 * n_users)))
        n_categories = int(min(6_000, max(120, 3 * n_skus**0.5)))
        n_generic_urls = int(min(11_400_000, max(1_000, 0.6 * n_users)))
        return cls(n_users, n_relevant, n_categories, n_skus, n_generic_urls, seed, complements)

    @property
    def engaged_share(self) -> float:
        """Share of users drawn from the engaged population, which supplies most relevant clients."""
        return min(1.0, 0.97 * self.n_relevant / self.n_users / ENGAGED_WITH_INPUT)

    @property
    def casual_relevant_share(self) -> float:
        """Chance a casual user with input events is relevant anyway (about 3% of relevant clients)."""
        casual_with_events = 0.3 * self.n_users * (1.0 - self.engaged_share)
        return min(1.0, 0.03 * self.n_relevant / max(casual_with_events, 1.0))

    @property
    def n_chunks(self) -> int:
        return -(-self.n_users // CHUNK_USERS)

    def to_json(self) -> dict:
        return asdict(self) | {
            "start": START.isoformat(sep=" "),
            "input_days": INPUT_DAYS,
            "target_days": TARGET_DAYS,
            "chunk_users": CHUNK_USERS,
            "n_topics": N_TOPICS,
        }
