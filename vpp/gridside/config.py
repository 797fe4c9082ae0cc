"""The grid-side file (``vpp run --grid-side FILE``): which adapters run and their settings.

YAML with up to three sections, each optional (``configs/gridside/example.yaml``)::

    openadr2: {vtn_url: ..., ven_name: ..., contract_type: pre_agreed, programs: {...}}
    openadr3: {vtn_url: ..., poll_s: 5, client_id: ..., client_secret_env: VPP_OADR3_SECRET,
               subscribe: {listen_host: 0.0.0.0, listen_port: 8443, public_url: ..., poll_s: 60}}
    iec104:   {host: 0.0.0.0, port: 2404, common_address: 1, hold_minutes: 60}

Secrets are never in the file: ``client_secret_env`` names the environment variable that holds
the OpenADR 3 client secret. Every error names the file, the field path and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from vpp.errors import UserError
from vpp.gridside.iec104 import Iec104Config
from vpp.gridside.openadr2 import OpenAdr2Config
from vpp.gridside.openadr3 import OpenAdr3Config, SubscribeConfig

CONTRACTS = ("pre_agreed", "invitation")
ANY_HOST = ("0.0.0.0", "::", "")  # a listener on every address: the VTN needs public_url


@dataclass(frozen=True)
class GridSideConfig:
    openadr2: OpenAdr2Config | None = None
    openadr3: OpenAdr3Config | None = None
    iec104: Iec104Config | None = None


def _section(path: Path, name: str, cls, raw: Any, extra: tuple[str, ...] = ()) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"{path}: {name}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    allowed = sorted(set(known) | set(extra))
    for key in raw:
        if key not in known and key not in extra:
            raise UserError(f"{path}: {name}.{key}: unknown key; expected one of {allowed}")
    args = {k: v for k, v in raw.items() if k in known}
    for key in ("contract_type",):
        if key in args and args[key] not in CONTRACTS:
            raise UserError(f"{path}: {name}.{key}: expected one of {list(CONTRACTS)}")
    for prog, contract in (args.get("programs") or {}).items():
        if contract not in CONTRACTS:
            raise UserError(
                f"{path}: {name}.programs.{prog}: expected one of {list(CONTRACTS)}, "
                f"got {contract!r}"
            )
    if "level_kw" in args and args["level_kw"] is not None:
        lv = args["level_kw"]
        if not (isinstance(lv, list) and len(lv) == 3 and all(_num(x) and x >= 0 for x in lv)):
            raise UserError(f"{path}: {name}.level_kw: expected three kW >= 0 (levels 1-3)")
        args["level_kw"] = (0.0, *map(float, lv))
    try:
        return cls(**args)
    except TypeError as exc:
        raise UserError(f"{path}: {name}: {exc}") from None


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _checked(path: Path, name: str, cfg: Any) -> Any:
    """Numbers in their ranges (the field path named)."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        numeric = f.name.endswith(("_s", "_minutes", "_frac", "_kw"))
        if numeric and v is not None and (not _num(v) or v < 0):
            raise UserError(f"{path}: {name}.{f.name}: expected a number >= 0, got {v!r}")
    if isinstance(cfg, Iec104Config):
        if not 1 <= cfg.common_address <= 65534:
            raise UserError(f"{path}: iec104.common_address: must be in [1, 65534]")
        if not 0 <= cfg.port <= 65535:
            raise UserError(f"{path}: iec104.port: must be in [0, 65535]")
        if cfg.hold_minutes < 15:
            raise UserError(f"{path}: iec104.hold_minutes: at least one interval (15)")
    if isinstance(cfg, OpenAdr3Config | OpenAdr2Config) and not cfg.vtn_url:
        raise UserError(f"{path}: {name}.vtn_url: required")
    return cfg


def _subscribe(path: Path, raw: Any) -> SubscribeConfig:
    """``openadr3.subscribe``: the VEN's webhook for subscriptions."""
    name = "openadr3.subscribe"
    if not isinstance(raw, dict):
        raise UserError(
            f"{path}: {name}: expected a mapping with listen_host, listen_port, public_url, "
            f"poll_s, got {type(raw).__name__}"
        )
    allowed = [f.name for f in fields(SubscribeConfig)]
    for key in raw:
        if key not in allowed:
            raise UserError(f"{path}: {name}.{key}: unknown key; expected one of {allowed}")
    host = raw.get("listen_host")
    if not isinstance(host, str):
        raise UserError(f"{path}: {name}.listen_host: required, the address to listen on")
    port = raw.get("listen_port", 0)
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535):
        raise UserError(f"{path}: {name}.listen_port: expected a port in [0, 65535], got {port!r}")
    url = raw.get("public_url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise UserError(f"{path}: {name}.public_url: expected an http(s) URL, got {url!r}")
    if url is None and host in ANY_HOST:
        raise UserError(
            f"{path}: {name}.public_url: required when listen_host is {host!r} "
            "(the URL the VTN reaches the listener at)"
        )
    poll = raw.get("poll_s", SubscribeConfig.poll_s)
    if not _num(poll) or poll <= 0:
        raise UserError(f"{path}: {name}.poll_s: expected a number > 0, got {poll!r}")
    return SubscribeConfig(host, port, url, float(poll))


def load(path: Path | str) -> GridSideConfig:
    """Read and check a grid-side file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with openadr2, openadr3, iec104")
    unknown = set(raw) - {"openadr2", "openadr3", "iec104"}
    if unknown:
        raise UserError(
            f"{path}: {sorted(unknown)[0]}: unknown key; expected openadr2, openadr3, iec104"
        )
    out: dict[str, Any] = {}
    if raw.get("openadr2") is not None:
        out["openadr2"] = _checked(
            path, "openadr2", _section(path, "openadr2", OpenAdr2Config, raw["openadr2"])
        )
    if raw.get("openadr3") is not None:
        sec = dict(raw["openadr3"]) if isinstance(raw["openadr3"], dict) else raw["openadr3"]
        sub = sec.pop("subscribe", None) if isinstance(sec, dict) else None
        cfg = _section(path, "openadr3", OpenAdr3Config, sec, extra=("client_secret_env",))
        if sub is not None:
            cfg = dataclasses.replace(cfg, subscribe=_subscribe(path, sub))
        env = sec.get("client_secret_env") if isinstance(sec, dict) else None
        if env:
            secret = os.environ.get(env)
            if secret is None:
                raise UserError(
                    f"{path}: openadr3.client_secret_env: environment variable {env} is not set"
                )
            cfg = dataclasses.replace(cfg, client_secret=secret)
        out["openadr3"] = _checked(path, "openadr3", cfg)
    if raw.get("iec104") is not None:
        out["iec104"] = _checked(
            path, "iec104", _section(path, "iec104", Iec104Config, raw["iec104"])
        )
    return GridSideConfig(**out)
