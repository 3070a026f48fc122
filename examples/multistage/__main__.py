"""``python -m examples.multistage``."""

import sys

from examples.multistage.demo import main

sys.exit(main())
