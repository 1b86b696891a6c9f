"""Serve a small local web page over an index: pick an indexed image or drop one of your own,
and see its nearest indexed images with their paths and similarities.

The page listens on 127.0.0.1 (this computer only) unless --host says otherwise, and serves only
the indexed images (addressed by their number in the index; no other file can be read through
it). A dropped image is embedded with the run the index was made with. Stop with Ctrl-C.

examples:
  infomax serve photos.index                      # then open http://127.0.0.1:8765/
  infomax serve photos.index --port 9000 -k 16
  infomax serve photos.index --host 0.0.0.0       # reachable from the network: think first
"""

from __future__ import annotations

import argparse

from infomax.cli.common import add_device_argument, eprint

HELP = "serve a local web page to search an index by example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from infomax.search.server import DEFAULT_PORT

    parser.add_argument("index", metavar="INDEX", help="an index file (made by 'infomax index')")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this computer only)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"port (default: {DEFAULT_PORT}; 0: any free port)",
    )  # fmt: skip
    parser.add_argument("-k", "--k", type=int, default=9, help="neighbours shown (default: 9)")
    add_device_argument(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="do not log requests")


def run(args: argparse.Namespace) -> int:
    from infomax.search import Searcher, make_server
    from infomax.search.server import _is_loopback

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must lie in [0, 65535], got {args.port}")
    searcher = Searcher(args.index, device=args.device)
    try:
        server = make_server(searcher, args.host, args.port, k=args.k,
                             log=None if args.quiet else eprint)  # fmt: skip
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
                         "choose another --port") from exc  # fmt: skip
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    eprint(f"serving {len(searcher.index)} images of {searcher.index.root} at "
           f"http://{shown}:{port}/ (Ctrl-C to stop)")  # fmt: skip
    if not _is_loopback(args.host):
        eprint("warning: listening on a non-loopback address; anyone who can reach it can "
               "search the index and see its images")  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        eprint("stopped")
    finally:
        server.server_close()
    return 0
