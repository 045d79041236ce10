"""Deterministic sharding of a registry, so N CI machines cover every layer exactly once."""

from __future__ import annotations

import zlib


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), 1 <= K <= N, or ValueError naming what was expected."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"expected K/N such as 1/4, got {text!r}")
    k, n = int(k), int(n)
    if not 1 <= k <= n:
        raise ValueError(f"expected 1 <= K <= N, got {text!r}")
    return k, n


def shard_of(name: str, count: int) -> int:
    """The 1-based shard a layer name belongs to; stable across runs, machines and new layers."""
    return zlib.crc32(name.encode("utf-8")) % count + 1


def select_shard(specs: list, k: int, n: int) -> list:
    """The layers of shard k of n, in registry order."""
    return [spec for spec in specs if shard_of(spec.name, n) == k]
