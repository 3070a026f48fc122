"""funnel-feast: look up Feast online features for the ids of a request batch."""

from funnel_feast.query import REPO_PATH_ENV, QueryFeast
from funnel_feast.repo import build_feature_repo

__all__ = ["QueryFeast", "REPO_PATH_ENV", "build_feature_repo"]
