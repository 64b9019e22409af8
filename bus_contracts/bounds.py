"""Validation bounds: every size a request can set is capped here, so that one
request cannot exhaust a host (memory, disk or hours of GPU time)."""

from __future__ import annotations

TASK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,19}$"
IDENT_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,47}$"
STRATEGY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"

MAX_SYMBOLS = 20
MAX_INDICATORS = 32
MAX_FUZZY_SETS_PER_INDICATOR = 8
MAX_HIDDEN_LAYERS = 8
MAX_HIDDEN_UNITS = 4096
MAX_MODEL_PARAMETERS = 20_000_000
"""Weights of the whole MLP: ~80 MB in fp32, minutes per epoch on a CPU fallback."""
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_INDICATOR_PERIOD = 500
MAX_LOOKAHEAD_BARS = 500
MAX_PATIENCE = 1_000
MAX_JOBS_LIMIT = 1_000
MAX_REASON_CHARS = 500
MAX_REQUEST_BYTES = 256 * 1024
