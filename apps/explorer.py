"""The explorer app, for `panel serve`:

    panel serve apps/explorer.py --address 127.0.0.1 --args --runs runs [--run NAME] [--allow-remote]

`python -m explorer` does the same and binds 127.0.0.1 by itself; `make run` also trains a run on digits first.
Browsers from other machines get a refusal unless `--allow-remote` is given.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from a checkout without installing

from explorer.app import create_app  # noqa: E402

parser = argparse.ArgumentParser(prog="apps/explorer.py")
parser.add_argument("--runs", default="runs", help="the runs folder (default ./runs)")
parser.add_argument("--run", default=None, help="the run to show first (its folder name)")
parser.add_argument("--allow-remote", action="store_true", help="serve browsers on other machines too")
args, _ = parser.parse_known_args(sys.argv[1:])

create_app(args.runs, run=args.run, allow_remote=args.allow_remote).servable(title="Deep clustering explorer")
