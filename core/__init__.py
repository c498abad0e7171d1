"""The training engine: data, augmentation, networks, DCCS, metrics, trainer and run directory.

Depends on torch, torchvision, numpy, scikit-learn and scipy only; never on a UI library.
"""

__version__ = "0.1.0"

from .config import TrainConfig  # noqa: E402
from .data import ImageSet, load_dataset  # noqa: E402
from .errors import ConfigError, DataError, RunError, TrainingDiverged, UserError  # noqa: E402
from .rundir import Run, list_runs  # noqa: E402


def __getattr__(name):  # Trainer pulls in the networks: import it lazily so that reading runs stays light
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    raise AttributeError(name)


__all__ = ["TrainConfig", "ImageSet", "load_dataset", "ConfigError", "DataError", "RunError", "TrainingDiverged",
           "UserError", "Run", "list_runs", "Trainer", "__version__"]
