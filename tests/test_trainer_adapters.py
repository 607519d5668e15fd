"""The trainer adapters against the real batch contracts of solo-learn, lightly and the official VICReg script.

solo-learn (github.com/vturrisi/solo-learn, read at commit 9187ea39):
* ``solo/data/pretrain_dataloader.py``: ``dataset_with_index`` makes every dataset return
  ``(index, *data)`` with ``data = (views, target)``, ``index`` the dataset position (0..N-1); unlabelled
  custom data (``CustomDatasetWithoutLabels``) gives ``target = -1``.
* ``solo/methods/base.py`` ``BaseMethod.training_step``: ``_, X, targets = batch``; X is a list of
  ``num_crops`` tensors; each large crop goes through ``_base_shared_step`` whose online classifier
  (on ``feats.detach()``) uses ``F.cross_entropy(logits, targets, ignore_index=-1)``; the k-NN monitor
  keeps ``targets != -1``.
* ``solo/methods/simclr.py`` + ``solo/losses/simclr.py``: ``indexes = batch[0].repeat(n_augs)``; positives
  are the pairs with equal index (minus the diagonal), negatives those with different indexes. So equal
  indexes for different images (the old -1 for brace patterns) make everything a positive: loss 0.
* ``solo/methods/deepclusterv2.py`` fills memory banks at ``indexes`` (must lie in 0..N-1).

lightly 1.6 (installed): ``LightlyDataset`` items are ``(views, target, filename)``; ``MultiViewCollate``
and the default collate give ``(list of view batches, targets, filenames)``; ``VICRegLoss``.
Official VICReg ``main_vicreg.py``: ``for step, ((x, y), _) in enumerate(loader, ...)`` with a
``DistributedSampler``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from genaug.loader import GenCLMapDataset, GenCLWebDataset, SoloLearnAdapter
from genaug.testing.shardfactory import make_shards, sample_key
from genaug.training import VICRegConfig, vicreg_loss

SIZE = 32
N = 20


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    make_shards(out, n_samples=N, shard_size=4)  # 5 shards of 4
    return out


def _sources(shards, tmp_path):
    tars_only = tmp_path / "tars-only"  # a folder of tars without index.json
    tars_only.mkdir()
    for tar in sorted(shards.glob("*.tar")):
        (tars_only / tar.name).symlink_to(tar)
    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    return {"index.json": str(shards / "index.json"), "folder": str(shards), "tars-only folder": str(tars_only),
            "brace pattern": str(shards / "shard-{0000..0004}.tar"), "list": urls,
            "joined patterns": f"{shards}/shard-{{0000..0001}}.tar::{shards}/shard-{{0002..0004}}.tar"}


@pytest.mark.parametrize("form", ["index.json", "folder", "tars-only folder", "brace pattern", "list",
                                  "joined patterns"])
def test_indexes_are_exact_and_unique_for_every_source_form(shards, tmp_path, form):
    source = _sources(shards, tmp_path)[form]
    dataset = GenCLWebDataset(source, adapter="dict", image_size=SIZE, shuffle_buffer=8)
    loader = DataLoader(dataset, batch_size=5, num_workers=2)
    items = [(int(i), k) for batch in loader for i, k in zip(batch["index"], batch["key"])]
    assert sorted(i for i, _ in items) == list(range(N))  # unique, 0..N-1 (DeepClusterV2's memory banks)
    assert all(key == sample_key(index, True) for index, key in items)  # the position in shard-list order


def test_remote_shards_without_index_are_refused_for_solo_learn():
    with pytest.raises(ValueError, match="remote shards without an index.json"):
        GenCLWebDataset("https://example.invalid/shard-{0000..0001}.tar", adapter="solo-learn")
    GenCLWebDataset("https://example.invalid/shard-{0000..0001}.tar", samples_per_epoch=4)  # other adapters: fine


def test_a_shard_listed_twice_is_refused(shards):
    tar = str(shards / "shard-0000.tar")
    with pytest.raises(ValueError, match="listed twice"):
        GenCLWebDataset([tar, tar])


def _simclr_loss(z: torch.Tensor, indexes: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """solo-learn's SimCLR loss rule (positives: equal index, off-diagonal; negatives: different index)."""
    z = F.normalize(z, dim=-1)
    sim = torch.exp(z @ z.T / temperature)
    pos_mask = indexes[:, None] == indexes[None, :]
    pos_mask.fill_diagonal_(False)
    neg_mask = indexes[:, None] != indexes[None, :]
    pos, neg = (sim * pos_mask).sum(1), (sim * neg_mask).sum(1)
    return -torch.log(pos / (pos + neg)).mean()


@pytest.mark.parametrize("form", ["brace pattern", "list", "index.json"])
def test_solo_learn_batch_contract(shards, tmp_path, form):
    source = _sources(shards, tmp_path)[form]
    loader = DataLoader(GenCLWebDataset(source, adapter="solo-learn", image_size=SIZE), batch_size=8)
    batch = next(iter(loader))
    indexes, X, targets = batch  # BaseMethod.training_step: `_, X, targets = batch`
    assert isinstance(X, list) and len(X) == 2  # num_large_crops = 2, no small crops
    assert all(x.shape == (8, 3, SIZE, SIZE) and x.dtype == torch.float32 for x in X)
    assert targets.dtype == torch.int64 and targets.shape == (8,) and (targets >= 0).all()
    assert indexes.dtype == torch.int64 and len(set(indexes.tolist())) == 8 and (indexes >= 0).all()
    # SimCLR: indexes.repeat(n_augs) -> exactly one positive (the other view) per row, a loss well above 0
    repeated = indexes.repeat(2)
    pos_mask = repeated[:, None] == repeated[None, :]
    pos_mask.fill_diagonal_(False)
    assert pos_mask.sum(1).tolist() == [1] * 16
    z = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    assert _simclr_loss(z, repeated).item() > 1.0
    assert abs(_simclr_loss(z, torch.full((16,), -1)).item()) < 1e-6  # what the old index = -1 produced


def test_solo_learn_unlabelled_targets(tmp_path):
    """-1 (solo-learn's own 'no label'): its online classifier loss, and so the loss its training_step returns
    and logs, is NaN on such a batch; the gradients are not: the backbone's stay finite (the classifier sees
    detached features) and the classifier's are 0. SoloLearnAdapter(0) makes the logged loss finite."""
    make_shards(tmp_path / "u", n_samples=8, shard_size=8, labelled=False)
    _, X, targets = next(iter(DataLoader(GenCLWebDataset(tmp_path / "u", adapter="solo-learn", image_size=SIZE),
                                         batch_size=8)))
    assert targets.tolist() == [-1] * 8
    backbone, classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 16)), torch.nn.Linear(16, 4)
    feats = backbone(X[0])
    class_loss = F.cross_entropy(classifier(feats.detach()), targets, ignore_index=-1)
    assert math.isnan(class_loss.item())
    (feats.pow(2).mean() + class_loss).backward()
    assert torch.isfinite(backbone[1].weight.grad).all() and (classifier.weight.grad == 0).all()
    adapter = SoloLearnAdapter(unlabelled_target=0)
    _, _, targets = next(iter(DataLoader(GenCLWebDataset(tmp_path / "u", adapter=adapter, image_size=SIZE),
                                         batch_size=8, num_workers=1)))
    assert targets.tolist() == [0] * 8
    with pytest.raises(ValueError, match="unlabelled_target"):
        SoloLearnAdapter(unlabelled_target=-2)


def test_solo_learn_real_training_step(shards):
    """A real solo-learn SimCLR training_step on a genaug batch (solo-learn run from a checkout on
    PYTHONPATH, with its requirements; skipped where it is not importable)."""
    pytest.importorskip("lightning")
    methods = pytest.importorskip("solo.methods")
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        "name": "genaug", "method": "simclr", "backbone": {"name": "resnet18"},
        "data": {"dataset": "custom", "train_path": ".", "val_path": ".", "format": "image_folder",
                 "num_workers": 0, "num_large_crops": 2, "num_small_crops": 0, "num_classes": 4},
        "optimizer": {"name": "lars", "batch_size": 8, "lr": 0.3, "classifier_lr": 0.1, "weight_decay": 1e-5,
                      "kwargs": {"momentum": 0.9}},
        "scheduler": {"name": "warmup_cosine"}, "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False}, "max_epochs": 1, "devices": 1, "accelerator": "cpu", "num_nodes": 1,
        "method_kwargs": {"proj_output_dim": 32, "proj_hidden_dim": 64, "temperature": 0.2}})
    OmegaConf.set_struct(cfg, False)
    model = methods.SimCLR(cfg)
    model.log = lambda *args, **kwargs: None  # no Trainer attached
    model.log_dict = lambda *args, **kwargs: None
    batch = next(iter(DataLoader(GenCLWebDataset(str(shards / "shard-{0000..0004}.tar"), adapter="solo-learn",
                                                 image_size=SIZE), batch_size=8)))
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.item() > 0.5  # the old index = -1 gave exactly the class loss


def test_lightly_collate_layout_and_vicreg_loss(shards, tmp_path):
    """genaug's lightly items collate exactly like LightlyDataset's (views, target, filename) items, and
    lightly's own VICRegLoss runs on them and equals genaug.training's loss."""
    lightly_data = pytest.importorskip("lightly.data")
    from lightly.loss import VICRegLoss
    from PIL import Image

    ours = GenCLMapDataset(shards, adapter="lightly", image_size=SIZE)
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40), (60 * i, 20, 200)).save(tmp_path / "imgs" / f"{i}.jpg")

    def two_views(image):
        tensor = torch.from_numpy(__import__("numpy").asarray(image.resize((SIZE, SIZE)), dtype="float32"))
        return [tensor.permute(2, 0, 1) / 255, tensor.permute(2, 0, 1).flip(2) / 255]

    theirs = lightly_data.LightlyDataset(str(tmp_path / "imgs"), transform=two_views)
    for collate in (None, lightly_data.MultiViewCollate()):
        ours_batch = next(iter(DataLoader(ours, batch_size=4, collate_fn=collate)))
        theirs_batch = next(iter(DataLoader(theirs, batch_size=4, collate_fn=collate)))
        for a, b in zip(ours_batch, theirs_batch):
            assert type(a) is type(b)
        views, labels, filenames = ours_batch  # lightly's loops: `views, _, _ = batch`
        assert len(views) == 2 and views[0].shape == theirs_batch[0][0].shape == (4, 3, SIZE, SIZE)
        assert labels.dtype == theirs_batch[1].dtype == torch.int64 and isinstance(filenames[0], str)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 16))
    x0, x1 = views
    z0, z1 = model(x0), model(x1)
    theirs_loss = VICRegLoss()(z0, z1)
    assert torch.isfinite(theirs_loss)
    assert theirs_loss.item() == pytest.approx(vicreg_loss(z0, z1, VICRegConfig()).item(), rel=1e-5)


def test_official_vicreg_loop_format_with_distributed_sampler(shards):
    """main_vicreg.py: a DistributedSampler per rank, `set_epoch`, and `for step, ((x, y), _) in loader`."""
    dataset = GenCLMapDataset(shards, adapter="vicreg", image_size=SIZE)
    seen = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        dataset.set_epoch(1)
        loader = DataLoader(dataset, batch_size=5, sampler=sampler)
        steps = 0
        for step, ((x, y), _) in enumerate(loader, start=1 * len(loader)):
            assert step == len(loader) + steps and x.shape == y.shape == (5, 3, SIZE, SIZE)  # epoch 1's steps
            steps += 1
        assert steps == len(loader) == 2
        seen += list(sampler)
    assert sorted(seen) == list(range(N))
