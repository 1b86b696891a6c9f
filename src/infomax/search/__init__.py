"""Image search with a trained encoder: index a folder of images, find the nearest ones.

- :func:`index_folder`: embed every image under a folder with a run's encoder into an index
  file, incrementally (only new or changed files are embedded again).
- :func:`search`, :class:`Searcher`: the k nearest indexed images of image files or indexed
  paths, by cosine similarity or Euclidean distance; exact by default, approximate (faiss IVF)
  on request.
- :class:`ExactSearcher`, :class:`IVFSearcher`, :func:`build_ivf`, :func:`recall_at_k`: the
  search engines on a plain matrix of codes.
- :func:`render_search_grid`: the query left of its neighbours, as a PNG.
- :func:`make_server`: a small local web page over an index (``infomax serve``).

See ``docs/search.md``.

>>> from infomax.search import index_folder, search
>>> index_folder("runs/dim-cifar10", "~/photos", "photos.index")          # doctest: +SKIP
>>> search("photos.index", ["~/photos/cat.jpg"], k=9)[0].paths            # doctest: +SKIP
"""

from infomax.search.encoder import RESIZE_POLICY, RunEncoder, retrieval_tap
from infomax.search.engine import (
    ExactSearcher,
    IVFSearcher,
    build_ivf,
    default_nlist,
    recall_at_k,
)
from infomax.search.grid import render_search_grid
from infomax.search.index import ImageIndex, IndexReport, index_folder
from infomax.search.search import Searcher, SearchResult, search
from infomax.search.server import make_server

__all__ = [
    "RESIZE_POLICY",
    "ExactSearcher",
    "IVFSearcher",
    "ImageIndex",
    "IndexReport",
    "RunEncoder",
    "SearchResult",
    "Searcher",
    "build_ivf",
    "default_nlist",
    "index_folder",
    "make_server",
    "recall_at_k",
    "render_search_grid",
    "retrieval_tap",
    "search",
]
