"""``python -m host_trainer`` is ``host-trainer``."""

import sys

from host_trainer.cli import main

sys.exit(main())
