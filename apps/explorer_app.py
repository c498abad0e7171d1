"""The explorer app, for `panel serve` (with the project installed: `make install` or `pip install -e .`):

    panel serve apps/explorer_app.py --address 127.0.0.1 --args --runs runs [--run NAME] [--allow-remote]
        [--data-root FOLDER]

`python -m explorer` does the same and binds 127.0.0.1 by itself; `make run` also trains a run on digits first.
Browsers from other machines get a refusal unless `--allow-remote` is given. (The file is not named explorer.py:
`panel serve` puts this folder first on the import path, where such a file would hide the explorer package.)
"""

import argparse
import sys

from explorer.app import create_app

parser = argparse.ArgumentParser(prog="apps/explorer_app.py")
parser.add_argument("--runs", default="runs", help="the runs folder (default ./runs)")
parser.add_argument("--run", default=None, help="the run to show first (its folder name)")
parser.add_argument("--allow-remote", action="store_true", help="serve browsers on other machines too")
parser.add_argument("--data-root", default=None,
                    help="data paths typed into the page must lie below it (default: the runs folder's parent)")
args, _ = parser.parse_known_args(sys.argv[1:])

create_app(args.runs, run=args.run, allow_remote=args.allow_remote, data_root=args.data_root).servable(
    title="Deep clustering explorer")
