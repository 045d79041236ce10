"""Deterministic sharding of a registry, so N CI machines cover every layer exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N, or ValueError saying what was expected."""
    first, sep, count = text.partition("/")
    if not sep or not first.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"expected K/N such as 1/4, got {text!r}")
    k, n = int(first), int(count)
    if not 1 <= k <= n:
        raise ValueError(f"expected 1 <= K <= N, got {text!r}")
    return k, n


def select_shard(items: Sequence[T], k: int, n: int) -> list[T]:
    """Shard k of n (1-based): every n-th item starting at the k-th, in the given order.

    Round-robin over the registry keeps shards within one layer of each other in size and
    depends only on the order of the file, which every machine of a CI matrix shares.
    """
    if not 1 <= k <= n:
        raise ValueError(f"expected 1 <= K <= N, got {k}/{n}")
    return list(items[k - 1 :: n])
