"""The runs folder as the explorer sees it: every run with its state, including runs still starting or failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import RunError
from core.rundir import Run

from .launcher import launch_state


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

    @property
    def live(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def label(self) -> str:
        progress = f" {self.step}/{self.total_steps}" if self.total_steps else ""
        return f"{self.name} — {self.state}{progress}"


def read_run_info(path: Path) -> RunInfo:
    """What the run list shows about one folder; never raises for a damaged run (state 'broken' instead)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        state, message = launch_state(path)
        return RunInfo(path.name, path, state, message, created=path.stat().st_mtime)
    try:
        run = Run(path)
        config = run.config
        settings = config.get("settings", {})
        status = run.status()
    except (RunError, OSError, ValueError) as e:
        return RunInfo(path.name, path, "broken", str(e), created=path.stat().st_mtime)
    state = status.get("state", "unknown")
    message = status.get("message", "")
    if state == "unknown":
        launch, launch_msg = launch_state(path)
        state, message = ("failed", launch_msg) if launch == "failed" else ("starting", "")
    return RunInfo(path.name, path, state, message, int(status.get("step", 0) or 0),
                   status.get("total_steps") or settings.get("steps"), settings.get("method", ""),
                   settings.get("dataset", ""), settings.get("beta_aug"), config.get("created", 0.0), settings)


class RunsFolder:
    """A folder of run directories (default ./runs)."""

    def __init__(self, root: str | Path = "runs"):
        self.root = Path(root).expanduser()

    def scan(self) -> tuple[list[RunInfo], str | None]:
        """(runs newest first, a message when the folder itself is the problem)."""
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
            # a β_Aug tuning session keeps its runs one level down: list them as session/run
            inner = [c for c in sorted(p.iterdir()) if c.is_dir()] if (p / "session.json").is_file() else []
            for q in [p] + inner:
                if (q / "config.json").exists() or (q / "launch.json").exists():
                    try:
                        info = read_run_info(q)
                    except OSError:
                        continue  # removed while we looked
                    if q is not p:
                        info.name = f"{p.name}/{q.name}"
                    infos.append(info)
        infos.sort(key=lambda i: i.created, reverse=True)
        return infos, None
