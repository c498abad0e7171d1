"""No user mistake or damaged file ends in a traceback, a dead run or lost data (docs/reliability.md): a malformed
control.json is reported and ignored while the run trains on; damaged data files, bad labels and bad settings give
one `error:` line, exit status 2, and create nothing; a finished run is never rewritten by a mistaken resume; a run
folder has one writer; a run killed before its first checkpoint starts again; a killed write leaves no litter; a
read-only or too full disk is refused before anything is written, and one that fills mid-run stops the run with one
line naming the checkpoint it keeps and how to resume."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from core import Run, TrainConfig
from core.cli import main
from core.trainer import Trainer

BAD_CONTROL = [
    ('{"seq":"abc","beta_aug":3}', "seq must be a whole number"),
    ('{"beta_aug":[1,2]}', "seq must be a whole number"),  # no seq at all
    ("[1,2,3]", "must hold a JSON object"),
    ('{"seq":Infinity}', "not valid JSON"),
    ('{"seq":1,"beta_aug":[1,2]}', "beta-aug must be a number"),
    ('{"seq":2,"beta_aug":-1}', "beta-aug must be a finite number ≥ 0"),
    ('{"seq":3,"stop":"no"}', "stop must be true or false"),
    ('{"seq":4,"beta_aug":1e999}', "beta-aug must be a finite number"),
    ("{", "not valid JSON"),
    ('{"seq":5,"pad":"' + "x" * 70_000 + '"}', "more than 64 KiB: ignored unread"),
]


@pytest.mark.slow
def test_malformed_control_files_are_reported_and_ignored_and_the_run_finishes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    trainer = Trainer(TrainConfig(dataset="digits", steps=len(BAD_CONTROL) + 3, batch_size=16, log_every=1,
                                  eval_every=0, snapshot_every=1000, checkpoint_every=1000, probe_size=100,
                                  progress=False, run_dir=str(run_dir)))

    def other_process(ev):  # one damaged control.json per step, as another program might write it
        if ev["type"] == "record" and ev["step"] <= len(BAD_CONTROL):
            (run_dir / "control.json").write_text(BAD_CONTROL[ev["step"] - 1][0])
        elif ev["type"] == "record" and ev["step"] == len(BAD_CONTROL) + 1:
            (run_dir / "control.json").write_text('{"seq": 6, "beta_aug": 3.0}')  # then a good one

    trainer.add_callback(other_process)
    result = trainer.fit()
    assert result["state"] == "finished" and result["step"] == len(BAD_CONTROL) + 3
    run = Run(run_dir)
    ignored = [e for e in run.metrics("event") if e["event"] == "control_ignored"]
    assert [e["step"] for e in ignored] == list(range(1, len(BAD_CONTROL) + 1))
    for event, (_, message) in zip(ignored, BAD_CONTROL):
        assert message in event["message"], (event["message"], message)
    err = capsys.readouterr().err
    assert err.count("warning: control.json") == len(BAD_CONTROL) and "Traceback" not in err
    # nothing of it was applied; a good request afterwards is taken at once (seq 6 follows the last good 5)
    good = len(BAD_CONTROL) + 2
    assert [(s["value"], s["source"], s["step"]) for s in run.metrics("set")] == [(3.0, "control", good)]
    expected = {step: 2.0 if step < good else 3.0 for step in range(1, good + 2)}
    assert {r["step"]: r["beta_aug"] for r in run.metrics()} == expected
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"


TINY = ["--steps", "4", "--batch-size", "16", "--probe-size", "50", "--eval-every", "0", "--no-progress",
        "--device", "cpu"]


def _one_line_error(capsys, code, *messages):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for message in messages:
        assert message in err, (message, err)
    return err


def _npz(path, images, **arrays):
    np.savez(path, images=images, **arrays)
    return path


def _digits_like(n=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _files_under(path):
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def _bad_data_cases(tmp):
    good = _npz(tmp / "good.npz", _digits_like(), labels=np.arange(64) % 4)
    raw = good.read_bytes()
    (tmp / "cut.npz").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for i in range(200, 1200, 7):
        flipped[i] ^= 0xFF
    (tmp / "flipped.npz").write_bytes(bytes(flipped))
    (tmp / "text.npz").write_text("images, labels\n1, 2\n")
    _npz(tmp / "string-labels.npz", _digits_like(), labels=np.array(list("abcd") * 16))
    _npz(tmp / "nan-labels.npz", _digits_like(), labels=np.where(np.arange(64) == 3, np.nan, 1.0))
    _npz(tmp / "negative-labels.npz", _digits_like(), labels=np.arange(64) % 4 - 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(6):
            img = io.BytesIO()
            Image.fromarray(_digits_like(1)[0]).save(img, "PNG")
            z.writestr(f"set/{'ab'[i % 2]}/{i}.png", img.getvalue())
    data = bytearray(buf.getvalue())
    data[60] ^= 0xFF  # inside the first member's compressed bytes: its CRC no longer matches
    (tmp / "crc.zip").write_bytes(bytes(data))
    return [("cut.npz", "damaged or cut short"), ("flipped.npz", "damaged or cut short"),
            ("text.npz", "is not an .npz archive"), ("string-labels.npz", "labels must be whole numbers"),
            ("nan-labels.npz", "labels hold NaN"), ("negative-labels.npz", "labels must be 0 or more"),
            ("crc.zip", "cannot read set/a/0.png in")]


def test_damaged_data_files_and_bad_labels_are_one_line_each_and_create_nothing(tmp_path, capsys):
    for name, message in _bad_data_cases(tmp_path):
        run_dir = tmp_path / f"run-{name}"
        code = main(["train", "--dataset", str(tmp_path / name), "--run-dir", str(run_dir), *TINY])
        err = _one_line_error(capsys, code, message)
        assert "allow_pickle" not in err and not run_dir.exists(), name


@pytest.mark.parametrize("args,message", [
    (["--epochs", "inf"], "epochs must lie in (0, 1000000], got inf"),
    (["--seed", "-1"], "seed must lie in [0, 9223372036854775807], got -1"),
    (["--seed", "1e20"], "invalid int value: '1e20'"),
    (["--lr", "nan"], "lr must be positive, got nan"),
    (["--run-dir", ""], "the run directory is empty"),
    (["--method", "nope"], "invalid choice: 'nope'"),
])
def test_bad_settings_are_one_line_each_and_create_nothing(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = [] if "--run-dir" in args else ["--run-dir", str(tmp_path / "r")]
    code = main(["train", "--dataset", "digits", *TINY, *run, *args])
    _one_line_error(capsys, code, message)
    assert _files_under(tmp_path) == []


def test_a_run_directory_that_is_a_file_or_under_one_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for run_dir, message in ((tmp_path / "afile", "is a file, not a folder"),
                             (tmp_path / "afile" / "run", "cannot create the run directory")):
        code = main(["train", "--dataset", "digits", "--run-dir", str(run_dir), *TINY])
        _one_line_error(capsys, code, message)
    assert (tmp_path / "afile").read_text() == "x"


def test_tuning_values_threshold_and_folder_are_checked_before_anything_trains(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cases = [(["--values", "1:inf"], "cannot read β_Aug values"),
             (["--values", "0:1e9:1e-9"], "a session takes at most 100"),
             (["--threshold", "-1"], "the overlap threshold must lie in (0, 1]"),
             (["--session-dir", str(tmp_path / "afile")], "is a file")]
    for args, message in cases:
        session = [] if "--session-dir" in args else ["--session-dir", str(tmp_path / "s")]
        code = main(["tune", "--dataset", "digits", "--steps", "4", "--no-progress", *session, *args])
        _one_line_error(capsys, code, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def finished_tiny_run(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--run-dir", str(run_dir), *TINY]) == 0
    return run_dir


def test_a_finished_run_is_never_rewritten_by_resume_or_eval_mistakes(finished_tiny_run, capsys):
    capsys.readouterr()
    before = _digest(finished_tiny_run)
    cases = [(["resume", str(finished_tiny_run)], "has finished step 4 of 4: nothing to resume"),
             (["resume", str(finished_tiny_run), "--steps", "2"], "--steps 2 is not more than 4"),
             (["eval", str(finished_tiny_run), "--checkpoint", "foo"], "latest, best or a step number, got 'foo'"),
             (["eval", str(finished_tiny_run), "--checkpoint", "999"], "no checkpoint 999")]
    for args, message in cases:
        _one_line_error(capsys, main(args), message)
        assert _digest(finished_tiny_run) == before, args


def test_a_config_of_the_wrong_type_or_shape_is_one_line(finished_tiny_run, capsys):
    capsys.readouterr()
    config = finished_tiny_run / "config.json"
    doc = json.loads(config.read_text())
    for settings, message in (({**doc["settings"], "lr": "abc"}, "lr must be a number, got 'abc'"),
                              ([1, 2, 3], "holds no settings object")):
        config.write_text(json.dumps({**doc, "settings": settings}))
        _one_line_error(capsys, main(["resume", str(finished_tiny_run), "--steps", "8"]), message)
    # valid JSON, but not a run's configuration: said by `Run.config`, for every reader
    from core.errors import RunError

    not_a_config = f"{config} is not a run's configuration: it holds no settings object"
    for bad in ([doc], {k: v for k, v in doc.items() if k != "settings"}, {**doc, "settings": [1, 2, 3]}):
        config.write_text(json.dumps(bad))
        with pytest.raises(RunError) as caught:
            Run(finished_tiny_run).config
        assert str(caught.value) == not_a_config
        for args in (["resume", str(finished_tiny_run), "--steps", "8"], ["eval", str(finished_tiny_run)],
                     ["predict", str(finished_tiny_run), "--out", str(finished_tiny_run.parent / "c.csv")]):
            _one_line_error(capsys, main(args), not_a_config)


def test_eval_falls_back_past_a_zero_byte_latest_checkpoint(finished_tiny_run, capsys):
    from core import Run

    ckpts = finished_tiny_run / "checkpoints"
    steps = Run(finished_tiny_run).checkpoint_steps()
    (ckpts / f"step_{steps[-1] + 1:08d}.pt").write_bytes(b"")  # a write cut off at its first byte
    assert main(["eval", str(finished_tiny_run)]) == 0
    assert f"checkpoint step {steps[-1]}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# one writer per run folder; runs killed early; temporary files of a killed write
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    from core.trainer import Trainer

    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--run-dir", str(run_dir), *TINY]) == 0
    capsys.readouterr()
    live = Trainer.resume(run_dir, steps=8, progress=False)  # holds the folder until it has trained
    _one_line_error(capsys, main(["resume", str(run_dir), "--steps", "8"]), "is being written by another process",
                    f"pid {__import__('os').getpid()}")
    live.fit()
    # a writer killed with the lock held: the kernel dropped the lock, the file still names the dead process
    (run_dir / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": 0}))
    assert main(["resume", str(run_dir), "--steps", "12"]) == 0
    assert json.loads((run_dir / "status.json").read_text())["step"] == 12


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_and_temporaries_go(tmp_path, capsys):
    from core import Run, TrainConfig
    from core.trainer import Trainer

    run_dir = tmp_path / "run"
    t = Trainer(TrainConfig(dataset="digits", run_dir=str(run_dir), steps=6, batch_size=16, probe_size=50,
                            eval_every=0, progress=False))
    t.writer.close()  # as if killed at this point: config, probe and status written, no checkpoint
    assert Run(run_dir).checkpoint_steps() == []
    (run_dir / "checkpoints" / ".step_00000004.pt.x1y2.tmp").write_bytes(b"\0" * 1000)  # a checkpoint cut off
    (run_dir / ".status.json.abc.tmp").write_text("{")
    assert main(["resume", str(run_dir)]) == 0
    assert "no readable checkpoint (it stopped before its first): it starts again from step 0" in \
        capsys.readouterr().err
    run = Run(run_dir)
    assert run.summary()["state"] == "finished" and run.summary()["step"] == 6
    assert [r["step"] for r in run.metrics()][0] == 1
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.slow
def test_the_first_checkpoint_is_written_within_a_minute(tmp_path, monkeypatch):
    from core import Run, TrainConfig
    from core.checkpoints import Checkpoints
    from core.trainer import Trainer

    t = Trainer(TrainConfig(dataset="digits", run_dir=str(tmp_path / "run"), steps=12, batch_size=16,
                            probe_size=50, eval_every=0, log_every=2, snapshot_every=1000, checkpoint_every=1000,
                            progress=False))
    monkeypatch.setattr(Checkpoints, "first_due", lambda self: self.folder.exists() and not any(
        self.folder.glob("step_*.pt")) and t.step >= 6)  # "a minute" reached at step 6
    t.fit()
    assert Run(tmp_path / "run").checkpoint_steps() == [6, 12]


# ---------------------------------------------------------------------------------------------------------------
# read-only and full disks: real small file systems (tmpfs), mounted where that is permitted (root on Linux)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """`small_disk("100m")`: a folder on a tmpfs of that size, a disk that really fills (and `_read_only(folder)`
    turns it read-only). Skips the test where mounting is not permitted; always unmounted afterwards."""
    import shutil
    import subprocess
    import sys

    mounted = []

    def mount(size):
        if not sys.platform.startswith("linux") or shutil.which("mount") is None:
            pytest.skip("small file systems are mounted with Linux's mount (tmpfs)")
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"mounting a small file system is not permitted here: {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _read_only(folder):
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)


def _fill(folder, leave):
    """Fill `folder`'s disk up to `leave` bytes, as another program might: returns the file that does it."""
    import shutil

    filler = folder / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(folder).free - leave))
    return filler


def test_a_read_only_run_folder_is_refused_before_anything_is_written(small_disk, capsys):
    from core.errors import RunError
    from core.runlock import RunLock

    disk = small_disk("2m")
    _read_only(disk)
    for run_dir in (disk / "run", disk / "new" / "run"):  # a folder to create, or one under a folder to create
        code = main(["train", "--dataset", "digits", "--run-dir", str(run_dir), *TINY])
        _one_line_error(capsys, code, f"cannot write the run directory {run_dir}: {disk} is on a read-only file "
                                      "system")
    assert list(disk.iterdir()) == []
    with pytest.raises(RunError, match=r"\.lock cannot be opened for its lock \(Read-only file system\)"):
        RunLock(disk).acquire()  # the lock of a run on a read-only disk: a message, not a traceback
    # a tuning session has no check of its own: the CLI's last resort says it in one line, exit status 1
    code = main(["tune", "--session-dir", str(disk / "s"), "--dataset", "digits", "--steps", "4", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err == f"error: {disk / 's'}: Read-only file system (EROFS)\n", err


def test_a_disk_without_room_for_the_checkpoints_is_refused_before_anything_is_written(small_disk, capsys):
    disk = small_disk("2m")
    code = main(["train", "--dataset", "digits", "--run-dir", str(disk / "run"), *TINY])
    _one_line_error(capsys, code, f"not enough room for the run directory {disk / 'run'}", "its disk has 2.0 MiB free",
                    "the run needs 390.7 MiB (2 + 2 checkpoints of about 89.7 MiB and 32.0 MiB for the rest)")
    # by hand: the digits default (z_s of 20) has 7,835,427 weights and buffers (encoder 3,444,513, critic 557,057,
    # discriminator 3,833,857), 4 bytes each but one int64 counter per batch norm: 31,341,720 bytes, three times over
    # (Adam's two moments) = 94,025,160 bytes = 89.7 MiB; 4 × that + 32 MiB = 409,655,072 bytes = 390.7 MiB
    assert list(disk.iterdir()) == []


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_it_keeping_its_checkpoint_and_resume_finishes_it(small_disk, capsys,
                                                                                        monkeypatch):
    import torch

    disk = small_disk("420m")  # a checkpoint of DCCS on digits is ~91 MiB: room for 1 + 2 of them and 32 MiB
    # (at the start and, once the filler has gone, at resume)
    run_dir = disk / "run"
    filled = []

    def another_program(ev):  # fills the disk once the first checkpoint is written
        if ev["type"] == "checkpoint" and not filled:
            filled.append(_fill(disk, leave=512 * 1024))

    init = Trainer.__init__
    monkeypatch.setattr(Trainer, "__init__", lambda self, *a, **k: (init(self, *a, **k),
                                                                    self.add_callback(another_program))[0])
    code = main(["train", "--dataset", "digits", "--run-dir", str(run_dir), *TINY,
                 "--checkpoint-every", "2", "--keep-checkpoints", "1"])
    err = capsys.readouterr().err.splitlines()[-1] + "\n"  # after the start line
    kept = run_dir / "checkpoints" / "step_00000002.pt"
    assert code == 1 and err.startswith("error: the run stopped at step 4: cannot write ") and err.count("\n") == 1
    for part in ("No space left on device (ENOSPC)", f"its last intact checkpoint is step 2 ({kept})",
                 f"make room, then continue with: python -m core resume {run_dir}"):
        assert part in err, (part, err)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "step_00000002.pt"]
    assert torch.load(kept, weights_only=True)["step"] == 2
    assert not list(run_dir.rglob("*.tmp"))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"

    filled[0].unlink()  # room again
    assert main(["resume", str(run_dir)]) == 0
    assert "resuming" in capsys.readouterr().err
    run = Run(run_dir)
    assert run.summary()["state"] == "finished" and run.summary()["step"] == 4
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == 4, steps
    assert [e["dropped_records"] for e in run.metrics("event") if e["event"] == "resumed"] == [1]  # step 4's
    # the disk turned read-only: resuming it again is refused before anything is written
    _read_only(disk)
    _one_line_error(capsys, main(["resume", str(run_dir), "--steps", "6"]),
                    f"cannot write the run directory {run_dir}: {run_dir} is on a read-only file system; copy the "
                    "run to a disk that can be written and resume it there")


def test_predict_to_a_read_only_or_full_disk_is_one_line(finished_tiny_run, small_disk, capsys):
    capsys.readouterr()
    read_only, full = small_disk("2m"), small_disk("2m")
    _read_only(read_only)
    _fill(full, leave=8 * 1024)  # the clusters of 1,797 images take ~50 KB
    for out, message in ((read_only / "c.csv", f"cannot write {read_only / 'c.csv'}: the folder {read_only} is on "
                                               "a read-only file system"),
                         (full / "c.csv", f"cannot write {full / 'c.csv'}: No space left on device"),
                         (full / "c.npz", f"cannot write {full / 'c.npz'}: No space left on device")):
        _one_line_error(capsys, main(["predict", str(finished_tiny_run), "--out", str(out)]), message)
    assert list(read_only.iterdir()) == [] and [p.name for p in full.iterdir()] == ["filler"]  # no temporary left


def test_a_file_system_error_that_slipped_through_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import core.cli

    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/some/where/file.npz")

    monkeypatch.setattr(core.cli, "cmd_eval", unreadable)
    assert main(["eval", "run"]) == 1
    assert capsys.readouterr().err == "error: /some/where/file.npz: Permission denied (EACCES)\n"

    def bug(args):
        raise OSError("an OSError that names no file and no file-system error is a bug")

    monkeypatch.setattr(core.cli, "cmd_eval", bug)
    with pytest.raises(OSError, match="is a bug"):
        main(["eval", "run"])
