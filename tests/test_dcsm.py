"""DCSM: each loss against a value worked out by hand on a tiny batch, the masking of same-cluster negatives,
the transitivity of r_ij, the ablation switches, and the method running inside the shared engine."""

import math

import pytest
import torch

from conftest import shared_file
from core import TrainConfig, load_dataset
from core import dcsm_losses as L
from core.config import validate
from core.kmeans import kmeans
from core.nets import ConvDiscriminator, VGGBackboneNet
from core.errors import ConfigError
from core.config import resolve_config
from core.trainer import Trainer


def test_similarity_from_kmeans_assignments_by_hand():
    r = L.similarity_from_assignments(torch.tensor([0, 1, 0]))
    assert r.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def _is_transitive(r: torch.Tensor) -> bool:
    # r_ij = r_jk = 1 ⇒ r_ik = 1: every two-step path is a direct link
    return bool(((r @ r > 0).float() <= r).all())


def test_kmeans_similarity_is_transitive_by_construction_and_the_threshold_rule_is_not():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        l = torch.softmax(3 * torch.randn(32, 10, generator=g), 1)
        assign, _ = kmeans(l, 10, generator=g)
        assert _is_transitive(L.similarity_from_assignments(assign))
    # cos(l1, l2) = 0.8, cos(l2, l3) = 0.8, cos(l1, l3) = 0.28: with threshold 0.7, 1~2 and 2~3 but not 1~3
    l = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.28, 0.96]])
    r = L.similarity_from_threshold(l, 0.7)
    assert r.tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    assert not _is_transitive(r)


def test_kmeans_recovers_separated_blobs():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(3).repeat_interleave(20)
    x = centres[truth] + 0.3 * torch.randn(60, 2, generator=g)
    assign, found = kmeans(x, 3, generator=g)
    # the same partition up to renaming: every true blob maps to exactly one cluster
    pairs = {(int(t), int(a)) for t, a in zip(truth, assign)}
    assert len(pairs) == 3 and len({a for _, a in pairs}) == 3


def test_dt_loss_by_hand():
    # unit-norm l: l1 = (1, 0), l2 = (0.6, 0.8) → g12 = 0.6; g11 = g22 = 1 (clamped to 1 − 1e-7)
    # r = identity: the two off-diagonal pairs cost −log(1 − 0.6) each, the diagonal −log(1 − 1e-7) ≈ 1e-7
    l = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    g = L.estimated_similarity(l)
    assert g[0, 1].item() == pytest.approx(0.6, abs=1e-6)
    expected = 2 * -math.log(0.4) / 4
    assert L.dt_loss(torch.eye(2), g).item() == pytest.approx(expected, abs=1e-5)
    # the same pair called similar: −log 0.6 instead
    assert L.dt_loss(torch.ones(2, 2), g).item() == pytest.approx(2 * -math.log(0.6) / 4, abs=1e-5)
    # softmax outputs are scaled to unit length first (Eq. 3): (0.5, 0.5) and (1, 0) give cos 45° = 0.7071
    g2 = L.estimated_similarity(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    assert g2[0, 1].item() == pytest.approx(math.sqrt(0.5), abs=1e-6)


def test_ft_loss_by_hand():
    # threshold 0.9: only the first sample is cluster-standard; its target is its own argmax (1, 0):
    # −[log 0.95 + log(1 − 0.05)] = −2 log 0.95, averaged over the batch of 2
    l = torch.tensor([[0.95, 0.05], [0.6, 0.4]], requires_grad=True)
    loss, share = L.ft_loss(l, 0.9)
    assert loss.item() == pytest.approx(-2 * math.log(0.95) / 2, abs=1e-6)
    assert share.item() == 0.5
    loss.backward()
    assert l.grad[1].abs().sum() == 0  # the non-standard sample gets no gradient
    assert l.grad[0, 0] < 0  # pushed towards its own argmax
    # at exactly the threshold a sample counts (Eq. 4: ≥)
    assert L.standard_mask(torch.tensor([[0.9, 0.1]]), 0.9).item() == 1.0


def test_entropy_loss_by_hand():
    assert L.entropy_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(-math.log(2), abs=1e-6)
    assert L.entropy_loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    # q = (0.75, 0.25): 0.75 ln 0.75 + 0.25 ln 0.25
    q = L.entropy_loss(torch.tensor([[1.0, 0.0], [0.5, 0.5]])).item()
    assert q == pytest.approx(0.75 * math.log(0.75) + 0.25 * math.log(0.25), abs=1e-6)


def test_jsd_mi_loss_by_hand_with_masked_negative():
    # positive score 1 → sp(−1); negatives 2 (counted) and 100 (masked: same pseudo-cluster) → sp(2) only
    pos = torch.tensor([[[1.0]]])
    neg = torch.tensor([[[[2.0]], [[100.0]]]])
    valid = torch.tensor([[True, False]])
    expected = math.log1p(math.exp(-1)) + math.log1p(math.exp(2))
    assert L.jsd_mi_loss(pos, neg, valid).item() == pytest.approx(expected, abs=1e-5)
    # at chance (all scores 0) the loss is 2 log 2, so the reported MI 2 log 2 − loss is 0
    zero = L.jsd_mi_loss(torch.zeros(2, 3, 3), torch.zeros(2, 4, 3, 3), torch.ones(2, 4, dtype=torch.bool))
    assert zero.item() == pytest.approx(L.LOG4, abs=1e-6)


def test_negatives_are_never_from_the_same_pseudo_cluster():
    g = torch.Generator().manual_seed(0)
    assign = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3])
    r = L.similarity_from_assignments(assign)
    seen = set()
    for _ in range(50):
        idx, valid = L.pick_negatives(r, 3, g)
        for i in range(8):
            for j, ok in zip(idx[i].tolist(), valid[i].tolist()):
                if ok:
                    assert assign[i] != assign[j]
                    seen.add((i, j))
                else:
                    assert assign[i] == assign[j]  # an invalid draw is one that had to fall inside the cluster
    # every admissible pair turns up: the draw is random, not a fixed partner
    admissible = {(i, j) for i in range(8) for j in range(8) if assign[i] != assign[j]}
    assert seen == admissible
    # one image with a single admissible partner asked for three: one valid draw, two masked
    idx, valid = L.pick_negatives(L.similarity_from_assignments(torch.tensor([0, 0, 0, 1])), 3, g)
    assert valid[0].sum().item() == 1 and idx[0][valid[0]].item() == 3


def test_split_discriminator_equals_the_concatenated_1x1_conv_network():
    torch.manual_seed(0)
    d = ConvDiscriminator(5, 3, hidden=8)
    fmap, vec = torch.randn(2, 5, 4, 4), torch.randn(2, 3)
    concat = torch.cat([fmap, vec[:, :, None, None].expand(-1, -1, 4, 4)], 1)
    first = torch.nn.functional.conv2d(concat, torch.cat([d.map_proj.weight, d.other_proj.weight], 1),
                                       d.map_proj.bias)
    expected = d.head(first).squeeze(1)
    assert torch.allclose(d(fmap, vec), expected, atol=1e-5)


def test_mi_pairs_scores_own_and_other_images_maps():
    torch.manual_seed(0)
    d = ConvDiscriminator(4, 2, hidden=6)
    fmap, z = torch.randn(3, 4, 2, 2), torch.randn(3, 2)
    neg_idx = torch.tensor([[1, 2], [2, 0], [0, 1]])
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    got = L.mi_pairs(d, z, fmap, neg_idx, valid)
    pos = torch.stack([d(fmap[i:i + 1], z[i:i + 1])[0] for i in range(3)])
    neg = torch.stack([torch.stack([d(fmap[j:j + 1], z[i:i + 1])[0] for j in neg_idx[i].tolist()])
                       for i in range(3)])
    assert torch.allclose(got, L.jsd_mi_loss(pos, neg, valid), atol=1e-5)
    # masked pairs do not count: (0,1), (0,2), (1,2) only
    by_hand = torch.nn.functional.softplus(-pos).mean() + torch.stack(
        [torch.nn.functional.softplus(neg[0, 0]), torch.nn.functional.softplus(neg[0, 1]),
         torch.nn.functional.softplus(neg[1, 0])]).mean()
    assert torch.allclose(got, by_hand, atol=1e-5)


@pytest.mark.parametrize("size,map_side", [(28, 7), (32, 8), (96, 12)])
def test_backbone_shapes(size, map_side):
    net = VGGBackboneNet(1, 10, size, dim_z=30, width=8)
    out = net(torch.randn(2, 1, size, size))
    assert out.logits.shape == (2, 10) and out.z.shape == (2, 30)
    assert out.fmap.shape == (2, 16 if size != 96 else 32, map_side, map_side)
    with pytest.raises(ConfigError, match="--image-size"):
        VGGBackboneNet(1, 10, 40)


def _tiny(tmp_path, name, **kw):
    cfg = TrainConfig(method="dcsm", dataset="digits", steps=2, run_dir=str(tmp_path / name), progress=False,
                      backbone_width=8, mi_hidden=16, repeats=1, log_every=1, eval_every=0, probe_size=200, **kw)
    return Trainer(cfg)


@pytest.mark.parametrize("ablation,present,absent", [
    ("none", {"dt_loss", "ft_loss", "mi_global", "mi_local", "entropy", "standard_share"}, set()),
    ("oc", {"dt_loss", "entropy"}, {"ft_loss", "mi_global", "mi_local"}),
    ("no-ft", {"dt_loss", "mi_global", "mi_local"}, {"ft_loss"}),
    ("no-mi", {"dt_loss", "ft_loss"}, {"mi_global", "mi_local"}),
    ("global-local", {"mi_global"}, {"mi_local"}),
    ("local-local", {"mi_local"}, {"mi_global"}),
])
def test_ablations_switch_terms_off(tmp_path, ablation, present, absent):
    t = _tiny(tmp_path, ablation, ablation=ablation)
    out = t.method.train_step(t.batches)
    assert present <= set(out) and not (absent & set(out))
    trained = {id(p) for group in t.method.opt.param_groups for p in group["params"]}
    ir = [id(p) for p in t.method.net.ir_block.parameters()]
    assert all((i in trained) == (ablation != "oc") for i in ir)


def test_dcsm_in_the_shared_engine_writes_its_curves_and_snapshots(tmp_path):
    from core import Run

    t = _tiny(tmp_path, "run")
    t.config = t.config.replace(steps=3)
    result = t.fit()
    assert result["state"] == "finished"
    run = Run(tmp_path / "run")
    assert run.config["settings"]["method"] == "dcsm"
    assert run.config["settings"]["batch_size"] == 32 and run.config["settings"]["mi_alpha"] == 0.2
    rec = [r for r in run.metrics() if r.get("kind") == "train"][-1]
    for key in ("dt_loss", "ft_loss", "mi_global", "mi_local", "entropy", "standard_share", "acc", "nmi", "ari"):
        assert key in rec, key
    assert 0 <= rec["entropy"] <= math.log(10) + 1e-6
    snap = run.snapshots()[-1].load()
    assert snap.z_c.shape == (200, 10) and snap.z_s.shape == (200, 30)  # l as Z_c, z as Z_s
    assert torch.allclose(torch.from_numpy(snap.z_c).sum(1), torch.ones(200), atol=2e-3)  # float16 on disk


def test_dataset_kmeans_centres_are_refreshed_and_assign_each_batch(tmp_path):
    t = _tiny(tmp_path, "a", kmeans_every=1, kmeans_sample=500)
    before = t.method.centres.clone()
    t.method.train_step(t.batches)
    assert not torch.equal(before, t.method.centres)  # refreshed from l of 500 sampled images
    l, _ = t.method.embed(t.images[:64])
    r = t.method.pseudo_similarity(l, t.generator)
    nearest = torch.cdist(l, t.method.centres).argmin(1)
    assert torch.equal(r, L.similarity_from_assignments(nearest))


def test_tracked_centres_move_towards_their_assigned_points_by_hand(tmp_path):
    t = _tiny(tmp_path, "a", num_clusters=3, kmeans_track=0.25)
    m = t.method
    m.centres.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    l = torch.tensor([[0.8, 0.2, 0.0], [0.6, 0.2, 0.2], [0.1, 0.9, 0.0]])  # two points at centre 0, one at 1
    m.train()
    r = m.pseudo_similarity(l, t.generator)
    assert torch.equal(r, L.similarity_from_assignments(torch.tensor([0, 0, 1])))
    # centre 0 moves a quarter of the way to (0.7, 0.2, 0.1), centre 1 to (0.1, 0.9, 0), centre 2 has no point
    expected = torch.tensor([[0.925, 0.05, 0.025], [0.025, 0.975, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(m.centres, expected, atol=1e-6)
    m.eval()  # evaluation never moves them
    m.pseudo_similarity(l, t.generator)
    assert torch.allclose(m.centres, expected, atol=1e-6)


def test_dataset_kmeans_refreshes_at_most_every_100_steps_by_default():
    # 70,000 images: a quarter epoch would be 547 steps of drift between refreshes
    fashion = load_dataset("fashion-mnist", shared_file("fashion-mnist.npz"))
    assert resolve_config(TrainConfig(method="dcsm", dataset="fashion-mnist"), fashion).kmeans_every == 100
    digits = resolve_config(TrainConfig(method="dcsm", dataset="digits"), load_dataset("digits"))
    assert digits.kmeans_every == 14  # a quarter epoch of 56 batches of 32
    with pytest.raises(ConfigError, match="kmeans-track must lie in"):
        validate(TrainConfig(method="dcsm", dataset="digits", kmeans_track=1.5))


def test_resumed_dcsm_run_computes_the_same_losses(tmp_path):
    from core import Run

    keys = ("dt_loss", "ft_loss", "mi_global", "mi_local", "loss")
    extra = dict(kmeans_every=3, checkpoint_every=4)
    a = _tiny(tmp_path, "a", **extra)
    a.config = a.config.replace(steps=8)
    a.fit()
    b = _tiny(tmp_path, "b", **extra)
    b.config = b.config.replace(steps=4)
    b.fit()
    Trainer.resume(tmp_path / "b", steps=8).fit()
    ref = {r["step"]: [r[k] for k in keys] for r in Run(tmp_path / "a").metrics()}
    got = {r["step"]: [r[k] for k in keys] for r in Run(tmp_path / "b").metrics()}
    for step in range(5, 9):  # k-means refreshes at steps 6 and 9 use the restored generator and clusters
        assert got[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6), step


def test_dccs_only_settings_are_refused_for_dcsm(tmp_path):
    with pytest.raises(ConfigError, match="beta-aug is a DCCS setting"):
        Trainer(TrainConfig(method="dcsm", dataset="digits", beta_aug=2.0, run_dir=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="ablation is a DCSM setting"):
        Trainer(TrainConfig(method="dccs", dataset="digits", ablation="oc", run_dir=str(tmp_path / "y")))
