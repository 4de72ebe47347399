"""Training data: a resumable, rank-sharded sample order and a fed-to-the-GPU DataLoader.

Resuming must replay exactly the batches an uninterrupted run would have seen. So the order of
epoch ``e`` is a permutation drawn from ``seed + e``, and every sample's augmentation is drawn
from a generator seeded by ``(seed, epoch, index)``: nothing depends on worker count, timing or
RNG state carried across a crash.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bisestdc_core.data.registry import build_dataset
from bisestdc_core.data.transforms import build_train_transforms
from bisestdc_core.training.config import Config


class SeededSamples(Dataset):
    """Wraps a dataset; ``ds[(epoch, index)]`` draws its augmentation from a fixed seed.

    ``rng`` is the generator the dataset's transforms were built with; it is reseeded for
    every sample (it travels to each DataLoader worker together with the transforms).
    """

    def __init__(self, dataset: Any, seed: int, rng: random.Random):
        self.dataset = dataset
        self.seed = seed
        self.rng = rng

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.rng.seed(hash((self.seed, epoch, index)) & 0x7FFFFFFF)
        sample = self.dataset[index]
        return {"image": sample["image"], "label": sample["label"]}


class ResumableSampler(Sampler):
    """Yields ``(epoch, index)`` for this rank: a per-epoch permutation, sharded by rank.

    ``batches_per_epoch`` full batches per rank and epoch; small datasets are repeated so that
    one epoch always holds at least one batch per rank.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_epoch = max(1, num_samples // (batch_size * world_size))
        self.epoch = 0
        self.skip_batches = 0

    def set_position(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch = epoch
        self.skip_batches = skip_batches

    def _epoch_order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        needed = self.batches_per_epoch * self.batch_size * self.world_size
        order: list[int] = []
        while len(order) < needed:
            order += torch.randperm(self.num_samples, generator=g).tolist()
        return order[:needed]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        mine = self._epoch_order()[self.rank::self.world_size]
        for idx in mine[self.skip_batches * self.batch_size:]:
            yield (self.epoch, idx)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip_batches) * self.batch_size


def _worker_init(_worker_id: int) -> None:
    # One OpenCV thread per worker: the workers already run in parallel, and nested thread
    # pools oversubscribe the cores (spin-waiting OpenMP threads starve the training step).
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def collate(samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([s["image"] for s in samples])
    labels = torch.stack([s["label"] for s in samples])
    return images, labels


def build_train_dataset(cfg: Config) -> SeededSamples:
    """The training split with the seed's augmentations, each sample seeded by its position."""
    dc = cfg.data
    rng = random.Random()
    transform = build_train_transforms(tuple(dc.crop_size), dc.scales, dc.jitter, rng=rng,
                                       focus_classes=dc.focus_classes,
                                       focus_prob=dc.focus_prob)
    dataset = build_dataset(dc.dataset, dc.root, dc.train_split, transform=transform)
    return SeededSamples(dataset, cfg.train.seed, rng)


def build_train_loader(cfg: Config, samples: SeededSamples, rank: int, world_size: int,
                       pin_memory: bool) -> tuple[DataLoader, ResumableSampler]:
    """DataLoader over ``samples`` (from :func:`build_train_dataset`, after its check)."""
    dc = cfg.data
    if len(samples) == 0:
        raise ValueError(f"{dc.root}: the '{dc.train_split}' split holds no images")
    sampler = ResumableSampler(len(samples), dc.batch_size, cfg.train.seed, rank, world_size)
    loader = DataLoader(
        samples,
        batch_size=dc.batch_size,
        sampler=sampler,
        num_workers=dc.workers,
        collate_fn=collate,
        worker_init_fn=_worker_init,
        pin_memory=pin_memory,
        drop_last=True,
        # Workers stay up between epochs; prefetching keeps the GPU fed.
        persistent_workers=dc.workers > 0,
        prefetch_factor=4 if dc.workers > 0 else None,
    )
    return loader, sampler
