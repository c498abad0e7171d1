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
LANDMARKS = 10_000  # t-SNE maps of more points: this many in the t-SNE, every other placed among its neighbours
PLACE_NEIGHBOURS = 5  # more smooths the placed points into their landmarks' average (10: 0.109, 5: 0.125 kept)
LANDMARK_WARM_ITERATIONS = 75  # at 10,000 landmarks 150 iterations take 5 s and keep 0.363 of the 10 nearest, 50: 0.356


def _threads() -> int:
    """The map worker's threads: its share of the CPU budget (core/cpu_budget.py), one by default."""
    from core.cpu_budget import map_threads

    return map_threads()


def nearest(queries: np.ndarray, reference: np.ndarray, k: int, *, skip_self: bool = False,
            chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `reference` for each row of `queries`: (indices, euclidean distances), nearest
    first. Squared distances as one matrix product per chunk of queries and torch's top-k, which on one thread is
    several times faster than scikit-learn's search for these 10–60-dimensional codes. `skip_self`: queries are
    the reference itself and a point is not its own neighbour."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    r = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    k = max(1, min(k, len(r) - int(skip_self)))
    r_sq = (r * r).sum(1)
    idx = np.empty((len(q), k), np.int64)
    dist = np.empty((len(q), k), np.float32)
    with torch.no_grad():
        for start in range(0, len(q), chunk):
            block = q[start:start + chunk]
            d2 = torch.addmm(r_sq[None, :], block, r.T, alpha=-2.0).add_((block * block).sum(1, keepdim=True))
            if skip_self:  # the point itself, whatever rounding makes of its distance
                rows = torch.arange(len(block))
                d2[rows, rows + start] = float("inf")
            d, i = torch.topk(d2, k, dim=1, largest=False, sorted=True)
            idx[start:start + len(block)] = i.numpy()
            dist[start:start + len(block)] = d.clamp_(min=0).sqrt_().numpy()
    return idx, dist


def neighbours(x: np.ndarray, k: int = 15) -> np.ndarray:
    """Each point's k nearest neighbours (sorted indices, the point itself left out)."""
    idx = nearest(x, x, k, skip_self=True)[0]
    idx.sort(1)
    return idx.astype(np.int32)


def knn_overlap(old: np.ndarray, new: np.ndarray) -> float:
    """Mean share of each point's nearest neighbours kept between two snapshots (from `neighbours`)."""
    if old.shape != new.shape:
        return 0.0
    shared = sum(len(np.intersect1d(p, q, assume_unique=True)) for p, q in zip(old, new))
    return float(shared / old.size)


def map_landmarks() -> int:
    """How many points a t-SNE map computes at most (`DCE_MAP_LANDMARKS`, default LANDMARKS; 0: every point)."""
    from core.cpu_budget import env_int

    return env_int("DCE_MAP_LANDMARKS", LANDMARKS, 0, 10**9)


def landmark_indices(n: int, m: int, seed: int = 0) -> np.ndarray | None:
    """The same m of n points for every snapshot of a run (so each map warm-starts from the last), sorted; None
    when every point takes part."""
    if m <= 0 or n <= m:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, m, replace=False))


def place(x: np.ndarray, land: np.ndarray, y_land: np.ndarray, k: int = PLACE_NEIGHBOURS) -> np.ndarray:
    """A map of every point from a map of the landmarks: each other point goes to the mean of its k nearest
    landmarks' positions, weighted by a Gaussian of its distances to them (bandwidth: its distance to the
    nearest), the way openTSNE places new points before optimising them; landmarks keep their own positions."""
    n = len(x)
    rest = np.setdiff1d(np.arange(n), land, assume_unique=True)
    y = np.empty((n, 2), np.float64)
    y[land] = y_land
    if len(rest):
        idx, dist = nearest(x[rest], x[land], k)
        d2 = dist.astype(np.float64) ** 2
        w = np.exp(-(d2 - d2[:, :1]) / np.maximum(2.0 * d2[:, :1], 1e-12))
        w /= w.sum(1, keepdims=True)
        y[rest] = np.einsum("nk,nkd->nd", w, np.asarray(y_land, np.float64)[idx])
    return y


def tsne_map(x: np.ndarray, previous: np.ndarray | None = None, *, restart: bool = False, seed: int = 0,
             n_jobs: int | None = None, knn: tuple[np.ndarray, np.ndarray] | None = None,
             warm_iterations: int = WARM_ITERATIONS) -> np.ndarray:
    """t-SNE of x (n, d) with openTSNE.

    Without `previous`: a short fit from PCA (100 exaggerated + 150 normal iterations). With it: 150 plain
    iterations from the previous map, at its own scale (rescaling would shrink it and make every point travel).
    `restart=True` (large changes): the previous map rescaled plus a short exaggeration phase, which keeps the
    global layout but lets clusters re-form. `knn`: (indices, distances) of each point's 3 × perplexity nearest
    neighbours when the caller has searched them already (one search serves the affinities and the restart check)."""
    from openTSNE import TSNEEmbedding, affinity, initialization
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    n_jobs = n_jobs or _threads()
    if n < 8:
        return np.zeros((n, 2)) if previous is None else np.asarray(previous, float)
    perplexity = min(PERPLEXITY, (n - 1) / 3.0)
    if knn is None:
        knn = nearest(x, x, affinity_neighbours(n), skip_self=True)
    aff = affinity.PerplexityBasedNN(perplexity=perplexity, n_jobs=n_jobs, random_state=seed, verbose=False,
                                     knn_index=PrecomputedNeighbors(*knn))
    warm = previous is not None and len(previous) == n
    gradient = "fft" if (not warm or restart or n >= 10_000) else "bh"
    opt = dict(n_jobs=n_jobs, random_state=seed, negative_gradient_method=gradient)
    if warm and not restart:
        emb = TSNEEmbedding(np.array(previous, dtype=np.float64), aff, **opt)
        return np.asarray(emb.optimize(warm_iterations, exaggeration=1, momentum=0.8))
    init = initialization.rescale(np.asarray(previous, float)) if warm else initialization.pca(x, random_state=seed)
    emb = TSNEEmbedding(init, aff, **opt)
    emb = emb.optimize(SCRATCH_SCHEDULE[0], exaggeration=12, momentum=0.8)
    return np.asarray(emb.optimize(SCRATCH_SCHEDULE[1], exaggeration=1, momentum=0.8))


def affinity_neighbours(n: int) -> int:
    """The neighbours openTSNE's perplexity-based affinities use: 3 × perplexity (fewer for tiny sets)."""
    return max(1, min(n - 1, int(3 * min(PERPLEXITY, (n - 1) / 3.0))))


def tsne_update(x: np.ndarray, previous: np.ndarray | None, previous_knn: np.ndarray | None, seed: int = 0,
                landmarks: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The t-SNE map of a snapshot and the 15 nearest neighbours behind it (for the next snapshot's restart check).

    One exact neighbour search serves the affinities and the check. Above `landmarks` points (map_landmarks()),
    the t-SNE runs on a fixed sample of that many and every other point is placed among its nearest landmarks:
    a map of all 70,000 Fashion-MNIST codes in seconds rather than a minute (docs/explorer.md, "Many points")."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n <= 8:
        return tsne_map(x, previous, seed=seed), None
    land = landmark_indices(n, map_landmarks() if landmarks is None else landmarks, seed)
    xs = x if land is None else x[land]
    knn = nearest(xs, xs, affinity_neighbours(len(xs)), skip_self=True)
    check = np.sort(knn[0][:, :15], 1).astype(np.int32)
    restart = previous_knn is not None and knn_overlap(previous_knn, check) < RESTART_OVERLAP
    warm = previous is not None and len(previous) == n
    prev = None if not warm else (previous if land is None else np.asarray(previous)[land])
    y = tsne_map(xs, prev, restart=restart, seed=seed, knn=knn,
                 warm_iterations=WARM_ITERATIONS if land is None else LANDMARK_WARM_ITERATIONS)
    return (y if land is None else place(x, land, y)), check


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
        y, knn = tsne_update(x, previous, previous_knn, seed)
    elif kind == "UMAP":
        y = umap_map(x, previous)
    else:
        raise ValueError(f"unknown projection {kind!r}")
    return y.astype(np.float32), time.perf_counter() - t0, knn


def _import_map_libraries() -> None:
    import openTSNE  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    import torch  # noqa: F401


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
