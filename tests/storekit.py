"""Building real stores in temporary directories, for tests of the store and of its users."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from oca.config import StoreConfig, load_toml, read_store_config
from oca.store import Store, init_disks


def write_store_config(root: Path, *, ssd: tuple[str, ...] = ("10MB",), hdd: tuple[str, ...] = ("50MB",),
                       map_size: str = "8MiB", extra: str = "") -> Path:
    """Write an oca.toml with one directory per disk under `root`; returns its path."""
    lines = ["[store]", 'index_path = "index"', f'map_size = "{map_size}"', 'partial_max_age = "1h"']
    for tier, caps in (("ssd", ssd), ("hdd", hdd)):
        if not caps:
            continue
        disks = []
        for n, cap in enumerate(caps):
            (root / f"{tier}{n}").mkdir(parents=True, exist_ok=True)
            disks.append(f'{{path = "{tier}{n}", capacity = "{cap}"}}')
        lines += [f"[store.tiers.{tier}]", f"disks = [{', '.join(disks)}]"]
    path = root / "oca.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def store_config(root: Path, **kw: object) -> StoreConfig:
    config = read_store_config(load_toml(write_store_config(root, **kw)))  # type: ignore[arg-type]
    init_disks(config)
    return config


def open_store(root: Path, **kw: object) -> Store:
    return Store.open(store_config(root, **kw), cleanup=True)


def random_file(path: Path, size: int, seed: int = 0) -> str:
    """Write `size` pseudo-random bytes; return their sha256."""
    data = hashlib.shake_256(f"{seed}".encode()).digest(size) if size else b""
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and "index" not in p.parts and p.name != "oca.toml" and not p.name.startswith(".oca"))


def sha256_of(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
