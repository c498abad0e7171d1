"""The runs folder as the explorer sees it: every run with its state, including runs still starting or failed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import RunError
from core.rundir import Run

from .launcher import launch_state

ARCHIVED = ".archived"  # marker file in a run folder: hidden from the lists, kept on disk (docs/run-directory.md)
TRASH = ".trash"  # deleted runs are moved into this folder of the runs root (a dot-folder: never listed)


@dataclass
class RunInfo:
    name: str
    path: Path
    state: str  # starting, running, finished, stopped, interrupted, failed, broken
    message: str = ""
    step: int = 0
    total_steps: int | None = None
    method: str = ""
    dataset: str = ""
    beta_aug: float | None = None
    created: float = 0.0
    settings: dict = field(default_factory=dict)
    archived: bool = False  # RUN/.archived exists (or the tuning session's folder has one)

    @property
    def live(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def label(self) -> str:
        if self.state == "broken":  # what is wrong, in the list itself (the message names the folder)
            message = self.message if len(self.message) <= 100 else self.message[:99] + "…"
            return f"{self.name} — broken: {message}"
        progress = f" {self.step}/{self.total_steps}" if self.total_steps else ""
        return f"{self.name} — {self.state}{progress}"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _broken(path: Path, message: str) -> RunInfo:
    return RunInfo(path.name, path, "broken", message.splitlines()[0] if message else "", created=_mtime(path))


def _whole(value, what: str, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise ValueError(f"{path.name}: {what} is {str(value)[:40]!r}, not a whole number")
    return int(value)


def read_run_info(path: Path) -> RunInfo:
    """What the run list shows about one folder; never raises for a damaged run (state 'broken' instead, with a
    one-line message that names the folder)."""
    path = Path(path)
    try:
        return _read_run_info(path)
    except FileNotFoundError:
        raise  # removed while we looked: the caller skips it
    except Exception as e:  # any damage we did not foresee still becomes a line on this entry, never a crash
        text = str(e)
        if path.name not in text:
            text = f"{path.name}: {type(e).__name__}: {text}"
        return _broken(path, text)


def _read_run_info(path: Path) -> RunInfo:
    config_path = path / "config.json"
    if config_path.is_dir():
        return _broken(path, f"{path.name}: config.json is a folder, not a file")
    if not config_path.is_file():
        state, message = launch_state(path)
        return RunInfo(path.name, path, state, message, created=_mtime(path))
    try:
        run = Run(path)
        config = run.config
    except (RunError, OSError, ValueError) as e:
        text = str(e).replace(str(path), path.name)  # short, and the folder's name comes first
        return _broken(path, text if text.startswith(path.name) else f"{path.name}: {text}")
    settings = config["settings"]  # Run.config refuses a config.json that holds no settings object
    if not settings:
        return _broken(path, f"{path.name}: config.json has no settings")
    steps = _whole(settings.get("steps"), "settings.steps", path)
    for key in ("method", "dataset"):
        if not isinstance(settings.get(key, ""), str):
            return _broken(path, f"{path.name}: settings.{key} is {str(settings[key])[:40]!r}, not text")
    beta_aug = settings.get("beta_aug")
    if beta_aug is not None and (isinstance(beta_aug, bool) or not isinstance(beta_aug, (int, float))):
        return _broken(path, f"{path.name}: settings.beta_aug is {str(beta_aug)[:40]!r}, not a number")
    created = config.get("created", 0.0)
    created = float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0
    if (path / "status.json").exists():
        try:
            raw = json.loads((path / "status.json").read_text(encoding="utf-8"))
            readable = isinstance(raw, dict)
        except (OSError, ValueError):
            readable = False
    else:
        readable = True
    status = run.status()
    state = status.get("state", "unknown")
    message = status.get("message", "")
    if not isinstance(state, str) or not isinstance(message, str):
        return _broken(path, f"{path.name}: status.json is damaged (state or message is not text)")
    if state == "unknown":
        if not readable:  # damaged, and no summary.json to tell how the run ended
            return _broken(path, f"{path.name}: status.json is damaged and there is no summary.json")
        launch, launch_msg = launch_state(path)
        state, message = (launch, launch_msg) if launch in ("failed", "broken") else ("starting", "")
    step = _whole(status.get("step", 0) or 0, "the status's step", path)
    total = _whole(status.get("total_steps"), "the status's total_steps", path) or steps
    return RunInfo(path.name, path, state, message, step, total, settings.get("method", ""),
                   settings.get("dataset", ""), None if beta_aug is None else float(beta_aug), created, settings)


class RunsFolder:
    """A folder of run directories (default ./runs)."""

    def __init__(self, root: str | Path = "runs"):
        self.root = Path(root).expanduser()

    def scan(self, archived: bool = False) -> tuple[list[RunInfo], str | None]:
        """(runs newest first, a message when the folder itself is the problem). Archived runs (RUN/.archived) are
        left out unless `archived`; dot-folders (the trash, .trash) are never listed."""
        if not self.root.exists():
            return [], f"the runs folder {self.root} does not exist yet: start a run, or choose another folder"
        if not self.root.is_dir():
            return [], f"{self.root} is not a folder"
        infos = []
        try:
            children = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError as e:
            return [], f"cannot read {self.root}: {e}"
        for p in children:
            try:
                infos.extend(self._entries(p))
            except FileNotFoundError:
                continue  # removed while we looked
            except Exception as e:  # one damaged entry never hides the others
                text = str(e).splitlines()[0] if str(e) else type(e).__name__
                infos.append(_broken(p, text if p.name in text else f"{p.name}: {type(e).__name__}: {text}"))
        if not archived:
            infos = [i for i in infos if not i.archived]
        infos.sort(key=lambda i: i.created, reverse=True)
        return infos, None

    @staticmethod
    def _entries(p: Path) -> list[RunInfo]:
        """The runs of one folder of the runs folder: itself, or a β_Aug tuning session's runs one level down
        (listed as session/run)."""
        inner = [c for c in sorted(p.iterdir()) if c.is_dir()] if (p / "session.json").is_file() else []
        out = []
        for q in [p] + inner:
            if (q / "config.json").exists() or (q / "launch.json").exists():
                try:
                    info = read_run_info(q)
                except FileNotFoundError:
                    continue  # removed while we looked
                if q is not p:
                    info.name = f"{p.name}/{q.name}"
                info.archived = (p / ARCHIVED).exists() or (q / ARCHIVED).exists()
                out.append(info)
        return out
