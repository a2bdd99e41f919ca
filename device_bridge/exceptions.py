"""Errors of the device bridge: one root, each subclass carrying its context and its fix."""

from __future__ import annotations

from pathlib import Path


class BridgeError(Exception):
    """Root of every error raised by `device_bridge`."""


class DbcLoadError(BridgeError, ValueError):
    """A DBC file that cantools cannot parse even after the documented repairs."""

    def __init__(self, source: str | Path, reason: str, repairs: tuple[str, ...] = ()) -> None:
        self.source = str(source)
        self.reason = reason
        self.repairs = repairs
        tried = f" after repairs {list(repairs)}" if repairs else ""
        super().__init__(
            f"cannot load DBC {self.source}{tried}: {reason}; fix the file (or add a repair to "
            "device_bridge/dbc.py) or choose another DBC"
        )


class DbcNotFoundError(BridgeError, FileNotFoundError):
    """A DBC file named by a mapping that is not where it should be."""

    def __init__(self, name: str, looked_in: tuple[str, ...]) -> None:
        self.name = name
        self.looked_in = looked_in
        super().__init__(
            f"DBC {name!r} not found (looked in {list(looked_in)}); set DIMO_BRIDGE_DBC_DIR or "
            "DIMO_BRIDGE_DBC_PATHS, or pass dbc_dir/dbc_paths explicitly"
        )


class LogFormatError(BridgeError, ValueError):
    """A recorded log whose format cannot be told from its name or is unsupported."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot read log {self.path}: {reason}; use a .log (candump -L), .asc, .blf, .trc "
            "or SavvyCAN .csv file, or name the format explicitly"
        )


class MappingError(BridgeError, ValueError):
    """A vehicle mapping file that is malformed or names signals that do not exist."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"invalid mapping {self.source}: {reason}; correct the mapping file")


class MappingNotFoundError(BridgeError, FileNotFoundError):
    """A vehicle mapping name that matches no file."""

    def __init__(self, name: str, available: tuple[str, ...]) -> None:
        self.name = name
        self.available = available
        super().__init__(
            f"no mapping {name!r}; use one of {list(available)} or a path to a YAML/JSON file"
        )


class CanBusError(BridgeError, OSError):
    """The CAN interface could not be opened or read."""

    def __init__(self, interface: str, channel: str, reason: str) -> None:
        self.interface = interface
        self.channel = channel
        self.reason = reason
        super().__init__(
            f"CAN bus {interface}:{channel} failed: {reason}; check DIMO_BRIDGE_CAN_INTERFACE "
            "and DIMO_BRIDGE_CAN_CHANNEL and that the interface is up"
        )
