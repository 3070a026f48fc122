"""Generated click data shaped like the Transformers4Rec example's (yoochoose-like)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from funnel_workflow.testing import make_clicks

# the ported example lives next to the tests as a plain module (its classes are saved as source)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def clicks() -> pd.DataFrame:
    return make_clicks()
