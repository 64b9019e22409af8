"""ZigZag labels: which barrier the closing price touches first.

For bar ``t`` the next ``lookahead`` closes are scanned: BUY when a close
reaches ``close[t]*(1+threshold)`` before any close reaches
``close[t]*(1-threshold)``, SELL when the lower barrier comes first, HOLD when
neither is reached. Only closes are used, so both barriers can never be hit in
the same bar. The last ``lookahead`` bars have no full window and get
:data:`UNLABELED` (never a guess: labelling only the tail bars that happen to
hit a barrier early would skew the classes at the end of the data).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LABEL_NAMES: tuple[str, ...] = ("BUY", "HOLD", "SELL")
"""The fixed label map: class index → name."""
BUY, HOLD, SELL = 0, 1, 2
UNLABELED = -1

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def zigzag_labels(close: Floats, threshold: float, lookahead: int) -> Ints:
    """One label per bar (``BUY``, ``HOLD``, ``SELL`` or ``UNLABELED``), int64."""
    if not 0 < threshold < 1 or lookahead < 1:
        raise ValueError("threshold must be in (0, 1) and lookahead at least 1")
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    m = max(n - lookahead, 0)  # bars with a full window
    labels = np.full(n, UNLABELED, dtype=np.int64)
    if m == 0:
        return labels
    base = close[:m]
    upper, lower = base * (1.0 + threshold), base * (1.0 - threshold)
    never = lookahead + 1
    first_up = np.full(m, never, dtype=np.int64)
    first_down = np.full(m, never, dtype=np.int64)
    for k in range(lookahead, 0, -1):  # backwards: the earliest hit is written last
        ahead = close[k : k + m]
        first_up[ahead >= upper] = k
        first_down[ahead <= lower] = k
    labels[:m] = np.where(first_up < first_down, BUY, np.where(first_down < first_up, SELL, HOLD))
    return labels
