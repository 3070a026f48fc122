"""funnel-faiss: approximate nearest-neighbour retrieval with FAISS.

``from funnel_faiss import QueryFaiss, build_index``
"""

from funnel_faiss.build import build_index
from funnel_faiss.query import INDEX_FILE, QueryFaiss

__version__ = "0.1.0"

__all__ = ["INDEX_FILE", "QueryFaiss", "build_index"]
