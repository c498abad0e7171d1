"""The explorer app, for `panel serve` (with the project installed: `make install` or `pip install -e .`):

    panel serve apps/explorer_app.py --address 127.0.0.1 --args --runs runs [--run NAME] [--data-root FOLDER]
    panel serve apps/explorer_app.py --basic-auth PASSWORD --cookie-secret SECRET --args --runs runs --allow-remote

`python -m explorer` does the same and binds 127.0.0.1 by itself; `make run` also trains a run on digits first.
Browsers from other machines get a refusal unless `--allow-remote` is given, and `--allow-remote` needs a login:
Panel's own `--basic-auth` (a password, or a users file) and `--cookie-secret` options give it here; without them
every page shows the refusal (explorer/page_args.py, docs/explorer.md "Safety"). (The file is not named
explorer.py: `panel serve` puts this folder first on the import path, where such a file would hide the explorer
package.)
"""

import argparse
import sys

import panel as pn

from explorer.app import create_app
from explorer.page_args import add_page_arguments, served_auth_problem

parser = argparse.ArgumentParser(prog="apps/explorer_app.py")
add_page_arguments(parser, password_file=False)
parser.add_argument("--run", default=None, help="the run to show first (its folder name)")
args, _ = parser.parse_known_args(sys.argv[1:])

problem = served_auth_problem(args.allow_remote)
if problem:  # --allow-remote without a login: no page for anyone, and the reason where the server was started
    print(f"error: {problem}", file=sys.stderr, flush=True)
    pn.pane.Alert(f"This explorer was started with --allow-remote but without a password: {problem}.",
                  alert_type="danger", css_classes=["remote-refusal"]).servable(title="Deep clustering explorer")
else:
    create_app(args.runs, run=args.run, allow_remote=args.allow_remote, data_root=args.data_root).servable(
        title="Deep clustering explorer")
