"""What `oca serve` runs: a config file (store-backed) or a directory (``--root``), and where.

The supervisor builds one `ServeSpec` from the command line and hands it to each worker as JSON, so
a worker started or restarted later runs exactly what the supervisor validated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oca.config import EdgeConfig, Section, load_oca_config, read_edge_config


@dataclass(frozen=True)
class ServeSpec:
    listen: tuple[str, int]
    config_path: Path | None = None        # store-backed: everything else comes from this file
    root: Path | None = None               # `--root DIR`: edge settings from `edge_data`
    edge_data: dict[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"
    rescan: float = 0.0                    # `--root`: look for added/removed files this often (0: never)

    @property
    def edge(self) -> EdgeConfig:
        if self.config_path is not None:
            return load_oca_config(self.config_path).edge
        return read_edge_config(Section(json.loads(json.dumps(self.edge_data)), "<command line>"))

    def to_json(self) -> str:
        return json.dumps({"listen": list(self.listen), "config_path": _s(self.config_path),
                           "root": _s(self.root), "edge_data": self.edge_data, "log_level": self.log_level,
                           "rescan": self.rescan})

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        d = json.loads(text)
        return cls((d["listen"][0], int(d["listen"][1])), _p(d["config_path"]), _p(d["root"]),
                   d["edge_data"], d["log_level"], float(d.get("rescan", 0.0)))


def root_edge_data(listen: str, workers: int, *, access_log: str | None = None,
                   admin: str | None = None) -> dict[str, Any]:
    """The edge settings of `oca serve --root`: defaults, tokens open, the flags given."""
    data: dict[str, Any] = {"server": {"listen": listen, "workers": workers}, "tokens": {"mode": "open"}}
    if access_log:
        data["log"] = {"access_log": access_log}
    if admin:
        data["admin"] = {"listen": admin}
    return data


def _s(p: Path | None) -> str | None:
    return str(p) if p is not None else None


def _p(s: str | None) -> Path | None:
    return Path(s) if s is not None else None
