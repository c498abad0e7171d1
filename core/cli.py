"""Command line: `python -m core train ...`, `python -m core eval RUN`, `python -m core resume RUN`,
`python -m core predict RUN --out clusters.csv`, `python -m core tune ...`.

Flags of `train` are generated from `TrainConfig`, so every setting is reachable and documented by `--help`.
A user mistake prints one clear line (exit status 2), never a traceback; so does a run stopped by a disk that filled
or a loss that diverged (exit status 1), and any other file-system error (exit status 1). Bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import signal
import sys
from pathlib import Path

from .config import TrainConfig, shared_fields
from .errors import DiskError, TrainingDiverged, UserError
from .io import DISK_ERRNOS, describe_os_error
from .methods import registry
from .settings import base_type, flag

# errors of files and disks that the last-resort catch of `main` reports in one line (besides any naming a path)
FILE_ERRNOS = DISK_ERRNOS | {errno.EACCES, errno.EPERM, errno.ENOENT, errno.EIO, errno.EISDIR, errno.ENOTDIR,
                             errno.EEXIST, errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE}

# the method settings the start line of `train` shows
SUMMARY_SETTINGS = ("beta_aug", "ablation", "mi_alpha", "mi_beta", "mi_delta")


def _setting_fields() -> list:
    """Every setting a flag exists for: the shared ones, then each registered method's own."""
    return shared_fields() + [f for _, f in registry.all_method_fields()]


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per setting, grouped as in the config (shared groups, then one group per method); defaults stay
    None so that only what the user typed overrides."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in _setting_fields():
        if f.name in skip:
            continue
        tp = base_type(f.type)
        help_text = f.metadata.get("help", "")
        default = f.default
        if default is not None and tp is not bool:
            help_text += f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
        title = f.metadata.get("group") or "other settings"
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        kw = {"dest": f.name, "default": None, "help": help_text.replace("%", "%%")}  # argparse formats help with %
        if tp is bool:
            group.add_argument("--" + flag(f.name), action=argparse.BooleanOptionalAction, **kw)
        else:
            if f.name == "method":
                kw["choices"] = registry.names()
            elif f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            group.add_argument("--" + flag(f.name), type=tp, metavar=f.name.upper() if tp is not str else None, **kw)


def given_settings(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    """The settings typed on the command line (flags left out are None)."""
    return {f.name: getattr(args, f.name) for f in _setting_fields()
            if f.name not in skip and getattr(args, f.name, None) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**given_settings(args))


def _install_signal_handlers(trainer) -> None:
    def handler(signum, frame):
        if trainer.stop_requested:  # a second signal: stop now
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        print(f"\n{name}: saving a checkpoint and stopping (send it again to stop at once)", file=sys.stderr)
        trainer.stop(f"received {name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _print_metrics(result: dict, out=sys.stdout) -> None:
    if result.get("acc") is not None:
        print(f"ACC {result['acc']:.4f}   NMI {result['nmi']:.4f}   ARI {result['ari']:.4f}", file=out)
    if result.get("mean_max_prob") is not None:
        print(f"mean max probability {result['mean_max_prob']:.3f}   empty clusters {result.get('empty_clusters')}",
              file=out)


def cmd_train(args) -> int:
    from .trainer import Trainer

    if getattr(args, "branch_from", None):
        if not args.run_dir:
            raise UserError("--branch-from needs a new run directory: --run-dir NEW")
        changes = given_settings(args, skip=("run_dir",))
        trainer = Trainer.branch(args.branch_from, args.run_dir, step=args.branch_step, **changes)
        if trainer.dist.is_main:
            print(f"branching {trainer.run_dir} from {args.branch_from} at step {trainer.step}", file=sys.stderr)
    elif args.resume:
        if not args.run_dir:
            raise UserError("--resume needs the run to continue: --run-dir RUN")
        overrides = given_settings(args, skip=("run_dir",))
        trainer = Trainer.resume(args.run_dir, **overrides)
        if trainer.dist.is_main and trainer.step == 0:
            print(f"{trainer.run_dir} has no readable checkpoint (it stopped before its first): it starts again "
                  f"from step 0 of {trainer.config.steps}", file=sys.stderr)
        elif trainer.dist.is_main:
            print(f"resuming {trainer.run_dir} at step {trainer.step} of {trainer.config.steps}", file=sys.stderr)
    else:
        trainer = Trainer(config_from_args(args))
        cfg = trainer.config
        weights = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in dataclasses.asdict(cfg.options).items() if k in SUMMARY_SETTINGS)
        if trainer.dist.is_main:
            print(f"run directory: {trainer.run_dir}  ({cfg.method}, {trainer.data.name}: {len(trainer.data)} images "
                  f"{trainer.data.size[0]}×{trainer.data.size[1]}, K={cfg.num_clusters}, {weights}, "
                  f"{cfg.steps} steps, schedule {cfg.schedule}, on {trainer.device}"
                  + (f", {trainer.dist.world_size} processes" if trainer.dist.active else "") + ")", file=sys.stderr)
    _install_signal_handlers(trainer)
    try:
        result = trainer.fit()
    finally:
        from .distributed import cleanup

        cleanup()
    if not trainer.dist.is_main:  # rank 0 reports for every process of a torchrun launch
        return 0 if result["state"] in ("finished", "stopped") else 1
    if result["state"] == "stopped":
        print(f"stopped at step {result['step']} ({result['message']}); continue with: "
              f"python -m core train --resume --run-dir {trainer.run_dir}", file=sys.stderr)
    where = (f" ({trainer.dist.world_size} processes, largest parameter difference between them "
             f"{result['distributed']['param_spread']:g})" if trainer.dist.active else "")
    print(f"{trainer.data.name}: {result['step']} steps in {result['time']:.0f} s on {result['device']}{where}")
    _print_metrics(result)
    if args.kmeans_baseline:
        from .metrics import kmeans_baseline

        base = kmeans_baseline(trainer.data, trainer.config.seed)
        if base is not None:
            print(f"k-means on raw pixels: ACC {base['acc']:.4f}   NMI {base['nmi']:.4f}   ARI {base['ari']:.4f}")
            result["kmeans_baseline"] = base
            trainer.writer.summary(result)
    return 0 if result["state"] in ("finished", "stopped") else 1


def cmd_tune(args) -> int:
    from .tuning import SESSION_FILE, SESSION_THRESHOLD, TuningSession, parse_values

    path = Path(args.session_dir)
    if (path / SESSION_FILE).exists():
        session = TuningSession(path)
        print(f"continuing the tuning session in {path}", file=sys.stderr)
    else:
        if args.mark or args.stop:
            raise UserError(f"{path} holds no tuning session to {'mark' if args.mark else 'stop'}")
        base = config_from_args(args)
        session = TuningSession.create(path, base, parse_values(args.values), mode=args.mode,
                                       warmup_steps=args.warmup_steps, parallel=args.parallel,
                                       threshold=SESSION_THRESHOLD if args.threshold is None else args.threshold,
                                       stop_at_overlap=not args.no_stop)
        print(f"tuning session {path}: β_Aug {', '.join(f'{v:g}' for v in session.values)} ({args.mode}, "
              f"{session.data['base']['steps']} steps each, {args.parallel} at a time)", file=sys.stderr)
    if args.stop:
        if session.data.get("state") != "running":
            raise UserError(f"the session in {path} is {session.data.get('state')}: there is nothing to stop")
        session.request_stop(by="cli")
        print(f"asked the session in {path} to stop: its runs save a checkpoint and stop; run `tune` on it again "
              "to continue", file=sys.stderr)
        return 0
    if args.mark:
        for item in args.mark:
            value, _, verdict = item.partition("=")
            try:
                session.mark(float(value), verdict.strip())
            except ValueError:
                raise UserError(f"--mark takes VALUE=overlap or VALUE=separated, got {item!r}") from None
    else:
        session.run(progress=args.progress is not False)
        if session.data["state"] == "stopped":
            print("stopped on request: run the same command again to continue", file=sys.stderr)
    print(format_session(session))
    return 0


def format_session(session) -> str:
    """A table of the session: value, state, overlap score, verdict, and ACC (labels: evaluation only)."""
    lines = [f"{'β_Aug':>6} {'state':>9} {'score':>7} {'verdict':>10} {'ACC*':>7} {'NMI*':>7}"]
    for v in session.values:
        e = session.entry(v)
        ev = e.get("evaluation") or {}
        score = f"{e['score']:.3f}" if e.get("score") is not None else "—"
        mark = session.data["marks"].get(f"beta-{v:g}")
        verdict = (session.verdict(v) or "—") + (" (person)" if mark else "")
        acc, nmi = (f"{ev[k]:7.4f}" if isinstance(ev.get(k), (int, float)) else f"{'—':>7}" for k in ("acc", "nmi"))
        lines.append(f"{v:6g} {e['state']:>9} {score:>7} {verdict:>10} {acc} {nmi}")
    rec = session.recommendation
    if rec is None:
        lines.append("recommendation: none yet")
    elif rec.get("value") is None:
        lines.append(f"recommendation: none ({rec['reason']}; by {rec['by']})")
    else:
        lines.append(f"recommendation: β_Aug = {rec['value']:g} ({rec['reason']}; by {rec['by']})")
    lines.append("* ACC/NMI use the labels and are shown for evaluation only; the decision never uses them")
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from .evaluate import evaluate_run, format_confusion

    report = evaluate_run(args.run, checkpoint=args.checkpoint, data_path=args.data_path)
    print(f"{report['run']}: checkpoint step {report['step']} ({report['checkpoint']}), "
          f"{report['num_images']} images, K={report['k']}")
    _print_metrics(report)
    print("cluster sizes: " + " ".join(str(s) for s in report["cluster_sizes"]))
    if report.get("confusion") is not None:
        print("\nconfusion matrix (rows: true classes; columns: clusters, matched to the classes in order)")
        print(format_confusion(report["confusion"], report["class_names"], report["cluster_order"]))
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from .predict import check_output, predict, write

    check_output(args.out)
    result = predict(args.run, args.data, checkpoint=args.checkpoint, image_size=args.image_size,
                     with_z=args.with_z, batch_size=args.batch_size, device=args.device, progress=True)
    path = write(result, args.out)
    sizes = np.bincount(result["cluster"])
    print(f"{path}: {len(result['cluster']):,} images in {int((sizes > 0).sum())} clusters "
          f"(sizes {' '.join(str(int(n)) for n in sizes)})")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line (`error: …`, exit status 2), like every other user error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m core", description="Deep image clustering engine (DCCS, DCSM).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train = sub.add_parser("train", help="train a clustering network and write a run directory")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --run-dir from its last checkpoint (add --steps to train longer)")
    train.add_argument("--branch-from", metavar="RUN", default=None,
                       help="start from another run's checkpoint (its latest, or --branch-step) with the settings "
                            "given here changed (β_Aug, steps); used by β_Aug tuning sessions")
    train.add_argument("--branch-step", type=int, default=None, help="checkpoint step of --branch-from")
    train.add_argument("--kmeans-baseline", action="store_true",
                       help="also cluster the raw pixels with k-means and print its ACC/NMI/ARI for comparison")
    add_config_arguments(train)
    train.set_defaults(func=cmd_train)

    tune = sub.add_parser("tune", help="β_Aug tuning session: train several values, stop at the first overlap, "
                                       "recommend the largest separated value")
    tune.add_argument("--session-dir", required=True, metavar="DIR",
                      help="session folder (session.json + one run per value); an existing session continues")
    tune.add_argument("--values", default="1:6", help="β_Aug values: 1,2,3 or a range 1:6 or 1:6:0.5 (default 1:6)")
    tune.add_argument("--mode", choices=("scratch", "branch"), default="scratch",
                      help="scratch: every value from fresh weights (the paper's way); branch: from one shared "
                           "warm-up checkpoint (faster)")
    tune.add_argument("--warmup-steps", type=int, default=None, help="warm-up length in branch mode (default: a "
                                                                     "third of --steps)")
    tune.add_argument("--parallel", type=int, default=1, help="runs trained at the same time (processes)")
    tune.add_argument("--threshold", type=float, default=None,
                      help="overlap score from which clusters count as overlapping (default 0.10; docs/tuning.md)")
    tune.add_argument("--no-stop", action="store_true", help="train every value even after an overlap")
    tune.add_argument("--stop", action="store_true", help="ask the session training in DIR (another process) to "
                      "stop; running tune on it again continues it")
    tune.add_argument("--mark", action="append", default=[], metavar="VALUE=overlap|separated",
                      help="record a person's verdict on a value of an existing session (overrides the score)")
    add_config_arguments(tune, skip={"beta_aug", "run_dir"})
    tune.set_defaults(func=cmd_tune)

    resume = sub.add_parser("resume", help="continue an interrupted run (same as train --resume --run-dir RUN)")
    resume.add_argument("run_dir", metavar="RUN")
    resume.add_argument("--steps", type=int, default=None, help="train to this many steps in all")
    resume.add_argument("--device", default=None)
    resume.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    resume.add_argument("--data-path", dest="data_path", default=None)
    resume.set_defaults(func=lambda a: cmd_train(argparse.Namespace(
        resume=True, kmeans_baseline=False, **{f.name: getattr(a, f.name, None) for f in _setting_fields()})))

    pr = sub.add_parser("predict", help="write the cluster of every image (the run's data set, or any image folder, "
                                        ".zip or .npz of the same size) to a .csv or .npz")
    pr.add_argument("run", metavar="RUN", help="run directory")
    pr.add_argument("--data", default=None, help="images to cluster: an image folder, .zip or .npz (default: the "
                                                 "run's own data set)")
    pr.add_argument("--out", required=True, help="clusters.csv (one row per image) or clusters.npz")
    pr.add_argument("--checkpoint", default="latest", help="latest, best, or a step number")
    pr.add_argument("--image-size", type=int, default=None, help="resize the images to this square size first")
    pr.add_argument("--with-z", action="store_true", help="add the columns of z_c and z_s")
    pr.add_argument("--batch-size", type=int, default=1024, help="images per forward pass")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("eval", help="print ACC/NMI/ARI and the confusion matrix of a run's checkpoint")
    ev.add_argument("run", metavar="RUN", help="run directory")
    ev.add_argument("--checkpoint", default="latest", help="latest, best, or a step number")
    ev.add_argument("--data-path", default=None, help="where the run's data set is now, if it moved")
    ev.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a mistake in the arguments (already reported in one line), or --help
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except (DiskError, TrainingDiverged) as e:  # the run stopped, its last good checkpoint kept: not a mistake
        print(f"error: {e}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file-system error nothing above turned into a message; other exceptions are bugs
        if e.filename is None and e.errno not in FILE_ERRNOS:
            raise
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
