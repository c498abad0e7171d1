"""`python -m explorer`: serve the explorer on 127.0.0.1 (and optionally start a training run first).

    python -m explorer                         # the runs in ./runs
    python -m explorer --train digits          # the quick start: train DCCS on digits and watch it
    python -m explorer --train fashion-mnist --data-path ../shared/data/fashion-mnist.npz --beta-aug 2
    DCE_PASSWORD=... python -m explorer --allow-remote    # other machines too, after a login (0.0.0.0)
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path

from core.errors import UserError

from .page_args import add_page_arguments, bind_address, cookie_secret, remote_password, websocket_origins


def follow_in_terminal(run_dir: Path, kmeans: bool) -> None:
    """A progress bar for the launched run in this terminal, then its ACC/NMI/ARI (and k-means for comparison)."""
    from tqdm.auto import tqdm

    from core.rundir import Run

    from .runs import read_run_info

    bar = None
    while True:
        info = read_run_info(run_dir)
        if info.total_steps and bar is None:
            bar = tqdm(total=info.total_steps, unit="step", desc=f"training {run_dir.name}", dynamic_ncols=True)
        if bar is not None:
            bar.update(max(0, info.step - bar.n))
        if not info.live:
            break
        time.sleep(1.0)
    if bar is not None:
        bar.close()
    if info.state != "finished":
        print(f"the run ended as {info.state}: {info.message}", file=sys.stderr)
        return
    summary = Run(run_dir).summary() or {}
    if summary.get("acc") is not None:
        print(f"{run_dir.name}: {summary['step']} steps in {summary['time']:.0f} s — ACC {summary['acc']:.4f}   "
              f"NMI {summary['nmi']:.4f}   ARI {summary['ari']:.4f}", flush=True)
    if kmeans:
        from core import TrainConfig, load_dataset
        from core.metrics import kmeans_baseline

        cfg = TrainConfig.from_dict(Run(run_dir).config["settings"])
        base = kmeans_baseline(load_dataset(cfg.dataset, cfg.data_path, image_size=cfg.image_size), cfg.seed)
        if base:
            print(f"k-means on raw pixels: ACC {base['acc']:.4f}   NMI {base['nmi']:.4f}   ARI {base['ari']:.4f}",
                  flush=True)
    print("the explorer keeps serving; Ctrl-C to quit", flush=True)


PORT_TRIES = 20


def free_port(address: str, wanted: int, tries: int = PORT_TRIES) -> int:
    """The first port from `wanted` on that nothing listens on at `address` (a second `make run` beside a first
    one gets the next port instead of a run that trains with no page); UserError when all are taken."""
    host = "0.0.0.0" if address in ("", "::") else address
    for port in range(wanted, wanted + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no obstacle
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise UserError(f"ports {wanted}–{wanted + tries - 1} on {host} are all in use: pass --port with a free one")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_page_arguments(p)
    p.add_argument("--address", default=None,
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 with --allow-remote)")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=True, help="open a browser")
    p.add_argument("--train", metavar="DATASET", default=None, help="start a DCCS run on this data set first")
    p.add_argument("--kmeans-baseline", action="store_true", help="with --train: print k-means ACC at the end")
    args, train_args = p.parse_known_args(argv)
    try:  # before anything starts: a page for other machines only behind a password
        password = remote_password(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    address = bind_address(args)
    try:  # before a run starts: a run must not train on with no page because the port was taken
        port = free_port(address, args.port)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if port != args.port:
        print(f"port {args.port} is in use (another explorer?): serving on {port}", flush=True)
    args.port = port

    import panel as pn

    from . import launcher
    from .app import create_app

    run_name = None
    try:
        if args.train:
            run_dir = launcher.launch(args.runs, dataset=args.train, extra_args=tuple(train_args))
            run_name = run_dir.name
            print(f"training in {run_dir} (log: {run_dir / 'train.log'})", flush=True)
            threading.Thread(target=follow_in_terminal, args=(run_dir, args.kmeans_baseline), daemon=True).start()
        elif train_args:
            raise UserError(f"unknown arguments: {' '.join(train_args)}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .projection import shared_service

    shared_service()  # the map worker starts now, while the page loads
    host = "127.0.0.1" if address in ("127.0.0.1", "0.0.0.0", "::", "") else address
    url = f"http://{host}:{args.port}"
    print(f"explorer: {url}  (Ctrl-C to quit)", flush=True)
    if password:
        print(f"other machines may log in on port {args.port} with any user name and the password "
              f"(bound to {address})", flush=True)
    if args.show:
        threading.Timer(1.5, lambda: webbrowser.open(url)).start()
    auth = dict(basic_auth=password, cookie_secret=cookie_secret()) if password else {}
    try:
        pn.serve({"/": lambda: create_app(args.runs, run=run_name, allow_remote=args.allow_remote,
                                          data_root=args.data_root)},
                 address=address, port=args.port, show=False, title="Deep clustering explorer",
                 websocket_origin=websocket_origins(address, args.port), verbose=False, **auth)
    except KeyboardInterrupt:
        pass
    except OSError as e:  # the port was taken in the moment between the check and the start
        print(f"error: the explorer could not start on {address}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        if run_name is not None:  # the run this command started ends with it (with a checkpoint)
            from .runs import read_run_info

            run_dir = Path(args.runs) / run_name
            if read_run_info(run_dir).live:
                print(f"stopping {run_name} (a checkpoint is saved; resume with "
                      f"python -m core resume {run_dir})", file=sys.stderr)
                launcher.stop(run_dir, wait=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
