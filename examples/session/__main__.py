"""``python -m examples.session``."""

import sys

from examples.session.demo import main

sys.exit(main())
