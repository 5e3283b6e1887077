"""When users are around: an active/dormant chain over days, then session counts per day."""

from __future__ import annotations

import numpy as np

from ubp.synth.params import N_DAYS, START
from ubp.synth.users import Users

START_ACTIVE = 0.9  # not the chain's stationary share: users who rarely return would start almost all dormant


def active_days(users: Users, rng: np.random.Generator) -> np.ndarray:
    """(n, N_DAYS) bool. Users who joined before day 0 start active with chance START_ACTIVE."""
    n = len(users)
    state = (rng.random(n) < START_ACTIVE) & (users.join_day < 0)
    out = np.empty((n, N_DAYS), dtype=bool)
    for day in range(N_DAYS):
        u = rng.random(n)
        state = np.where(state, u >= users.p_quit, u < users.p_return)
        state = np.where(users.join_day == day, True, state & (users.join_day < day))
        out[:, day] = state
    return out


def sessions_per_day(users: Users, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, N_DAYS) session counts: Poisson with the user's rate and weekday habit, on active days only."""
    dow = (START.weekday() + np.arange(N_DAYS)) % 7
    lam = users.rate[:, None] * users.weekday[:, dow] * active
    return rng.poisson(lam)
