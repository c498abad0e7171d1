"""2-D maps of a snapshot's latent codes: t-SNE (openTSNE) and UMAP, each started from the previous map of the
same points so that successive maps do not jump, and computed in a worker process so the page stays responsive.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

KINDS = ("t-SNE", "UMAP")

# Settings measured on 2 CPU cores with 5,000 points of 60 dimensions (docs/explorer.md has the table):
# a warm-started t-SNE update takes ~1.9 s against ~9.5 s for openTSNE's default fit from scratch.
PERPLEXITY = 30.0
SCRATCH_SCHEDULE = (100, 150)  # early-exaggeration iterations, then normal ones: ~2.5 s at 5k
WARM_ITERATIONS = 150  # more iterations do not make a better map of gradually changed data, only drift it
RESTART_OVERLAP = 0.5  # below this share of kept 15-nearest neighbours the data changed too much for a warm start
UMAP_WARM_EPOCHS = 200
EXACT_KNN_UP_TO = 100_000  # exact neighbours (sklearn) beat annoy for 60-dim codes even at 70k points


def _threads() -> int:
    """The map worker's threads: its share of the CPU budget (core/cpu_budget.py), one by default."""
    from core.cpu_budget import map_threads

    return map_threads()


def neighbours(x: np.ndarray, k: int = 15) -> np.ndarray:
    """Each point's k nearest neighbours (sorted indices, the point itself left out)."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(x) - 1))
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    idx.sort(1)
    return idx.astype(np.int32)


def knn_overlap(old: np.ndarray, new: np.ndarray) -> float:
    """Mean share of each point's nearest neighbours kept between two snapshots (from `neighbours`)."""
    if old.shape != new.shape:
        return 0.0
    shared = sum(len(np.intersect1d(p, q, assume_unique=True)) for p, q in zip(old, new))
    return float(shared / old.size)


def tsne_map(x: np.ndarray, previous: np.ndarray | None = None, *, restart: bool = False, seed: int = 0,
             n_jobs: int | None = None) -> np.ndarray:
    """t-SNE of x (n, d) with openTSNE.

    Without `previous`: a short fit from PCA (100 exaggerated + 150 normal iterations). With it: 150 plain
    iterations from the previous map, at its own scale (rescaling would shrink it and make every point travel).
    `restart=True` (large changes): the previous map rescaled plus a short exaggeration phase, which keeps the
    global layout but lets clusters re-form."""
    from openTSNE import TSNEEmbedding, affinity, initialization

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    n_jobs = n_jobs or _threads()
    if n < 8:
        return np.zeros((n, 2)) if previous is None else np.asarray(previous, float)
    aff = affinity.PerplexityBasedNN(x, perplexity=min(PERPLEXITY, (n - 1) / 3.0), n_jobs=n_jobs,
                                     random_state=seed, method="exact" if n <= EXACT_KNN_UP_TO else "annoy",
                                     verbose=False)
    warm = previous is not None and len(previous) == n
    gradient = "fft" if (not warm or restart or n >= 10_000) else "bh"
    opt = dict(n_jobs=n_jobs, random_state=seed, negative_gradient_method=gradient)
    if warm and not restart:
        emb = TSNEEmbedding(np.array(previous, dtype=np.float64), aff, **opt)
        return np.asarray(emb.optimize(WARM_ITERATIONS, exaggeration=1, momentum=0.8))
    init = initialization.rescale(np.asarray(previous, float)) if warm else initialization.pca(x, random_state=seed)
    emb = TSNEEmbedding(init, aff, **opt)
    emb = emb.optimize(SCRATCH_SCHEDULE[0], exaggeration=12, momentum=0.8)
    return np.asarray(emb.optimize(SCRATCH_SCHEDULE[1], exaggeration=1, momentum=0.8))


def umap_map(x: np.ndarray, previous: np.ndarray | None = None, *, seed: int | None = None) -> np.ndarray:
    """UMAP of x, initialised from the previous layout when there is one (UMAP's `transform` drifts across
    training snapshots, umap issue 247; a short fit from the old layout keeps the picture in place). Exact
    neighbours from scikit-learn spare pynndescent's ~25 s compile on the first call."""
    import umap

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 8:
        return np.zeros((n, 2))
    k = min(15, n - 1)
    knn = (None, None, None)
    if n <= 20_000:
        from sklearn.neighbors import NearestNeighbors

        dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
        knn = (idx, dist.astype(np.float32), None)
    kw = dict(n_neighbors=k, min_dist=0.1, random_state=seed, n_jobs=1 if seed is not None else _threads(),
              precomputed_knn=knn, verbose=False)
    if previous is not None and len(previous) == n:
        reducer = umap.UMAP(init=np.asarray(previous, dtype=np.float32), n_epochs=UMAP_WARM_EPOCHS,
                            learning_rate=0.5, **kw)
    else:
        reducer = umap.UMAP(init="spectral", **kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def compute_map(kind: str, x: np.ndarray, previous: np.ndarray | None, previous_knn: np.ndarray | None = None,
                seed: int = 0) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Entry point for the worker process: (map, seconds, nearest neighbours of x for the next call's check)."""
    t0 = time.perf_counter()
    knn = None
    if kind == "t-SNE":
        knn = neighbours(np.asarray(x, np.float32)) if len(x) > 8 else None
        restart = previous_knn is not None and knn is not None and knn_overlap(previous_knn, knn) < RESTART_OVERLAP
        y = tsne_map(x, previous, restart=restart, seed=seed)
    elif kind == "UMAP":
        y = umap_map(x, previous)
    else:
        raise ValueError(f"unknown projection {kind!r}")
    return y.astype(np.float32), time.perf_counter() - t0, knn


def _import_map_libraries() -> None:
    import openTSNE  # noqa: F401
    import sklearn.neighbors  # noqa: F401


def _worker_init(server: int) -> None:
    """Ctrl-C is the server's business: the worker ends when the server (process `server`) shuts the pool down, or
    when the server dies without doing so (killed: a pool worker would otherwise wait for work forever), also when
    it died while the worker was still starting. The worker yields its core to a trainer (a lower priority), so
    that watching a run does not slow it down."""
    import signal

    from core.cpu_budget import lower_priority

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority()
    # the server's pid, not os.getppid() here: a server killed while this worker imported has left it to init
    threading.Thread(target=_exit_with_parent, args=(server,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def worker_environment():
    """The map worker's share of the CPU budget in the environment it inherits: its thread count for every
    numerical library (BLAS, OpenMP, numba) and sleeping, not spinning, idle threads (core/cpu_budget.py)."""
    from core.cpu_budget import quiet_environment

    threads = str(_threads())  # DCE_MAP_THREADS overrides it, not OMP_NUM_THREADS (meant for training)
    wanted = {name: threads for name in THREAD_VARIABLES}
    wanted["OMP_WAIT_POLICY"] = quiet_environment()["OMP_WAIT_POLICY"]
    # numba (UMAP) compiles into a cache of ours, never into site-packages
    from core.data.cache import default_cache_dir

    wanted["NUMBA_CACHE_DIR"] = os.environ.get("NUMBA_CACHE_DIR") or str(default_cache_dir() / "numba")
    with _ENV_LOCK:
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass
class MapJob:
    key: tuple
    future: Future
    started: float = field(default_factory=time.perf_counter)


class ProjectionService:
    """Maps computed in one worker process (so heavy numerics never block the web server's thread), cached per
    (run, space, kind, step) and warm-started from the nearest earlier map of the same run, space and kind."""

    def __init__(self, processes: bool = True, max_entries: int = 300):
        self._lock = threading.Lock()
        self.cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()  # LRU
        self.max_entries = max_entries
        self.seconds: dict[tuple, float] = {}
        self._processes = processes
        self._pool = None

    def _executor(self):
        if self._pool is None:
            if self._processes:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_worker_init, initargs=(os.getpid(),))
            else:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1)
        return self._pool

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key][0]
            return None

    def previous(self, key: tuple) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(map, neighbours) of the same run, space and kind at the closest step (earlier preferred)."""
        run, space, kind, step = key
        with self._lock:
            steps = [k[3] for k in self.cache if k[:3] == (run, space, kind)]
            if not steps:
                return None
            earlier = [s for s in steps if s <= step]
            return self.cache[(run, space, kind, max(earlier) if earlier else min(steps))]

    def submit(self, key: tuple, x: np.ndarray) -> MapJob:
        prev_y, prev_knn = self.previous(key) or (None, None)
        with worker_environment():  # the worker process starts (with this environment) at the first submit
            future = self._executor().submit(compute_map, key[2], x, prev_y, prev_knn)

        def store(f: Future):
            if not f.cancelled() and f.exception() is None:  # a superseded map was cancelled: nothing to keep
                y, secs, knn = f.result()
                with self._lock:
                    self.cache[key] = (y, knn)
                    self.seconds[key] = secs
                    while len(self.cache) > self.max_entries:
                        old, _ = self.cache.popitem(last=False)
                        self.seconds.pop(old, None)

        future.add_done_callback(store)
        return MapJob(key, future)

    def prewarm(self) -> None:
        """Start the worker and import the map libraries now, so that the first map does not wait for them."""
        if self._processes:
            with worker_environment():
                self._executor().submit(_import_map_libraries)

    def shutdown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


_SERVICE: ProjectionService | None = None


def shared_service() -> ProjectionService:
    """One projection worker per server process, shared by its sessions (maps are cached for everyone)."""
    global _SERVICE
    if _SERVICE is None:
        _SERVICE = ProjectionService()
        _SERVICE.prewarm()
    return _SERVICE
