"""`dimo bridge`: run the bridge, decode a log, drain or inspect the queue, make a keystore."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from device_bridge.checks import check_decoded, check_frames
from device_bridge.config import BridgeSettings
from device_bridge.decoder import Decoder
from device_bridge.exceptions import BridgeConfigError, BridgeError, NoReadingsError
from device_bridge.logs import LogFormat, TimeUnit, open_log
from device_bridge.sources import BusSource, LogSource, open_bus
from protocol.exceptions import ProtocolError

# Signing, the queue and upload load only in the commands that use them: `dimo bridge decode`
# starts fast.

app = typer.Typer(help="The device bridge: CAN/OBD-II -> signed VSS bundles -> oracle.")
# Piped output is not cut at 80 columns: tables keep their natural width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 250)

_Opt = typer.Option
_FormatOpt = Annotated[
    LogFormat | None,
    _Opt("--format", help="The log's format (default: told from the content)."),
]
_TimeUnitOpt = Annotated[
    TimeUnit | None,
    _Opt(help="Unit of a log table's time column (default: inferred from frame periods)."),
]


def _settings(**overrides: Any) -> BridgeSettings:
    return BridgeSettings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


@app.command()
def run(
    log: Annotated[
        Path | None, _Opt(help="Replay this recorded log instead of a live bus.")
    ] = None,
    speed: Annotated[float | None, _Opt(help="Replay speed: 1 recorded pace, 0 fastest.")] = None,
    mapping: Annotated[str | None, _Opt(help="Vehicle mapping name or file.")] = None,
    dbc_dir: Annotated[Path | None, _Opt(help="Directory of the mapping's DBC files.")] = None,
    interface: Annotated[str | None, _Opt(help="python-can interface of the live bus.")] = None,
    channel: Annotated[str | None, _Opt(help="python-can channel(s), comma-separated.")] = None,
    keystore: Annotated[Path | None, _Opt(help="Encrypted device keystore (JSON).")] = None,
    oracle_url: Annotated[str | None, _Opt(help="The oracle's base URL.")] = None,
    vehicle_id: Annotated[int | None, _Opt(help="The vehicle's token id.")] = None,
    deployment: Annotated[Path | None, _Opt(help="Deployment record (chain, anchor).")] = None,
    anchor_address: Annotated[str | None, _Opt(help="AttestationAnchor address.")] = None,
    chain_id: Annotated[int | None, _Opt(help="Chain id of the signing domain.")] = None,
    queue: Annotated[Path | None, _Opt(help="The queue database.")] = None,
    window_ms: Annotated[int | None, _Opt(help="Window length in ms.")] = None,
    batch_size: Annotated[int | None, _Opt(help="Bundles per upload request.")] = None,
    obd_interval: Annotated[float | None, _Opt(help="Poll OBD-II every N s (0 = off).")] = None,
    drain: Annotated[
        float, _Opt(help="After a log ends, upload for up to N s (-1 = until empty).")
    ] = -1.0,
    fmt: _FormatOpt = None,
    time_unit: _TimeUnitOpt = None,
) -> None:
    """Run the bridge: bus or log -> decode -> windows -> sign -> queue -> oracle."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = _settings(
            mapping=mapping,
            dbc_dir=dbc_dir,
            can_interface=interface,
            can_channel=channel,
            keystore=keystore,
            oracle_url=oracle_url,
            vehicle_id=vehicle_id,
            deployment=deployment,
            anchor_address=anchor_address,
            chain_id=chain_id,
            queue_path=queue,
            window_ms=window_ms,
            upload_batch_size=batch_size,
            replay_speed=speed,
            obd_interval_s=obd_interval,
        )
        from device_bridge.runner import Bridge

        bridge = Bridge.from_settings(settings)
        source: LogSource | BusSource = (
            LogSource(
                log,
                speed=settings.replay_speed,
                fmt=fmt,
                time_unit=time_unit,
                known_ids=bridge.decoder.all_known_ids(),
            )
            if log is not None
            else BusSource.from_settings(settings)
        )
        poller = None
        if settings.obd_interval_s > 0 and log is None:
            from device_bridge.obd import ObdClient, ObdPoller

            obd_bus = open_bus(settings.can_interface, settings.can_channel.split(",")[0])
            client = ObdClient(obd_bus, timeout_s=settings.obd_timeout_s)
            poller = ObdPoller(client, bridge.offer, interval_s=settings.obd_interval_s)
            poller.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: bridge.stop())
        console.print(
            f"bridge: device {bridge.sealer.key.address} vehicle {settings.vehicle_id} -> "
            f"{settings.oracle_url}; queue {settings.queue_path} ({bridge.queue.depth()} waiting)"
        )
        try:
            stats = bridge.run(source, drain_timeout_s=None if drain < 0 else drain)
        finally:
            if poller is not None:
                poller.stop()
        if isinstance(source, LogSource):
            check_frames(source.log)
            if stats.readings == 0:
                raise NoReadingsError(
                    source.log.path,
                    stats.frames,
                    source.log.describe(),
                    f"dropped: {dict(bridge.decoder.stats.by_reason())}",
                )
    except (BridgeError, ProtocolError) as exc:
        raise _fail(exc) from None
    counters = bridge.queue.counters()
    console.print(
        f"frames {stats.frames:,}  readings {stats.readings:,}  bundles {stats.bundles}  "
        f"waiting {bridge.queue.depth()}  accepted {counters['accepted']}  "
        f"duplicate {counters['duplicate']}  rejected {counters['rejected']}"
    )


@app.command()
def decode(
    log: Annotated[
        Path, typer.Argument(help="The recorded log (candump, ASC, BLF, TRC, CSV/TSV table).")
    ],
    model: Annotated[
        str | None, _Opt("--model", "-m", help="Vehicle mapping name or file.")
    ] = None,
    dbc_dir: Annotated[Path | None, _Opt(help="Directory of the mapping's DBC files.")] = None,
    limit: Annotated[int, _Opt(help="Readings to print (0 = none, -1 = all).")] = 50,
    fmt: _FormatOpt = None,
    time_unit: _TimeUnitOpt = None,
    suggest: Annotated[
        bool, _Opt("--suggest", help="Propose a mapping (YAML) for the log and --dbc.")
    ] = False,
    dbc: Annotated[Path | None, _Opt(help="With --suggest: the DBC file to read.")] = None,
    channel: Annotated[
        str | None, _Opt(help="With --suggest: the log channel the DBC describes.")
    ] = None,
    output: Annotated[
        Path | None, _Opt("--output", "-o", help="With --suggest: write the YAML here.")
    ] = None,
) -> None:
    """Decode a log and print its VSS readings and the counts of skipped or malformed frames.

    Exits non-zero if the log gives 0 frames or its frames decode into 0 mapped signals.
    With --suggest, reads the log and a DBC and prints a mapping to edit instead.
    """
    if suggest:
        _suggest(log, dbc, channel, output, fmt, time_unit)
        return
    if model is None:
        raise _fail(BridgeConfigError("--model", "name a mapping (or use --suggest --dbc FILE)"))
    try:
        decoder = Decoder.from_settings(_settings(dbc_dir=dbc_dir), mapping=model)
        recorded = open_log(log, fmt, time_unit=time_unit, known_ids=decoder.all_known_ids())
        start = time.perf_counter()
        frames = list(recorded)
        read_s = time.perf_counter() - start
        readings = decoder.decode_many(frames)
        decode_s = time.perf_counter() - start - read_s
    except (BridgeError, ProtocolError) as exc:
        raise _fail(exc) from None
    console.print(f"log: {recorded.describe()}")
    for bus, report in sorted(decoder.dbc_reports.items()):
        if report.repairs:
            repairs = "; ".join(
                f"{r.kind} x{r.count}{' (dropped)' if r.dropped else ''}: {r.detail}"
                for r in report.repairs
            )
            console.print(f"DBC of bus {bus} ({report.source}) repaired: {repairs}")
    shown = readings if limit < 0 else readings[:limit]
    if shown:
        table = Table(title=f"VSS readings of {log.name} ({len(readings):,} in all)")
        table.add_column("time (s)", justify="right")
        table.add_column("signal")
        table.add_column("value", justify="right")
        for reading in shown:
            table.add_row(f"{reading.timestamp:.6f}", reading.path, repr(reading.value))
        console.print(table)
    per_signal = Counter(r.path for r in readings)
    summary = Table(title="readings per signal")
    summary.add_column("signal")
    summary.add_column("readings", justify="right")
    for path, count in sorted(per_signal.items()):
        summary.add_row(path, f"{count:,}")
    console.print(summary)
    stats = decoder.stats
    counts = Table(title="frames")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    counts.add_row("frames read", f"{stats.frames:,}")
    counts.add_row("decoded in full", f"{stats.decoded:,}")
    counts.add_row("unknown ids (skipped)", f"{sum(stats.unknown_ids.values()):,}")
    for reason, count in sorted(stats.by_reason().items()):
        counts.add_row(f"{reason}", f"{count:,}")
    for kind, count in sorted(recorded.stats.repaired.items()):
        counts.add_row(f"log record {kind}", f"{count:,}")
    for reason, count in sorted(recorded.stats.bad.items()):
        counts.add_row(f"malformed log record: {reason}", f"{count:,}")
    console.print(counts)
    _print_implausible(stats.implausible())
    for example in recorded.stats.repair_examples[:5]:
        console.print(f"  {example.reason} line {example.line}: {example.text}")
    for example in recorded.stats.examples[:5]:
        console.print(f"  {example.reason} line {example.line}: {example.text}")
    console.print(
        f"throughput: read {stats.frames:,} frames in {read_s:.3f} s "
        f"({_rate(stats.frames, read_s)} frames/s); decoded and mapped them in {decode_s:.3f} s "
        f"({_rate(stats.frames, decode_s)} frames/s)"
    )
    try:
        check_decoded(recorded, decoder, len(readings))
    except BridgeError as exc:
        raise _fail(exc) from None


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:,.0f}" if seconds > 0 else "-"


def _print_implausible(implausible: Counter[tuple[str, str]]) -> None:
    if not implausible:
        return
    table = Table(title="implausible values (outside the VSS range, dropped)")
    table.add_column("VSS signal")
    table.add_column("DBC signal")
    table.add_column("count", justify="right")
    for (path, dbc_signal), count in sorted(implausible.items()):
        table.add_row(path, dbc_signal, f"{count:,}")
    console.print(table)


def _suggest(
    log: Path,
    dbc: Path | None,
    channel: str | None,
    output: Path | None,
    fmt: LogFormat | None,
    time_unit: TimeUnit | None,
) -> None:
    from device_bridge.suggest import suggest_mapping

    if dbc is None:
        raise _fail(BridgeConfigError("--dbc", "--suggest needs the DBC file: --dbc FILE"))
    try:
        text = suggest_mapping(log, dbc, channel=channel, fmt=fmt, time_unit=time_unit)
    except (BridgeError, ProtocolError) as exc:
        raise _fail(exc) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"suggested mapping -> {output}; edit it, then decode with --model {output}")


@app.command()
def upload(
    queue: Annotated[Path | None, _Opt(help="The queue database.")] = None,
    oracle_url: Annotated[str | None, _Opt(help="The oracle's base URL.")] = None,
    batch_size: Annotated[int | None, _Opt(help="Bundles per upload request.")] = None,
    timeout: Annotated[float, _Opt(help="Give up after N s (-1 = until empty).")] = -1.0,
) -> None:
    """Upload what waits in the queue until it is empty (retrying with backoff)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = _settings(queue_path=queue, oracle_url=oracle_url, upload_batch_size=batch_size)
        from device_bridge.queue import BundleQueue

        with BundleQueue(settings.queue_path, max_bundles=settings.queue_max_bundles) as q:
            from device_bridge.uploader import Uploader

            uploader = Uploader.from_settings(q, settings)
            empty = uploader.drain(timeout_s=None if timeout < 0 else timeout)
            uploader.close()
            report = uploader.report
            console.print(
                f"accepted {report.accepted}  duplicate {report.duplicate}  rejected "
                f"{report.rejected}  failures {report.failures}  waiting {q.depth()}"
            )
    except BridgeError as exc:
        raise _fail(exc) from None
    if not empty:
        raise typer.Exit(code=1)


@app.command()
def status(
    queue: Annotated[Path | None, _Opt(help="The queue database.")] = None,
) -> None:
    """Show the queue: bundles waiting, totals, and the dead letters with their problems."""
    try:
        settings = _settings(queue_path=queue)
        from device_bridge.queue import BundleQueue

        with BundleQueue(settings.queue_path, max_bundles=settings.queue_max_bundles) as q:
            counters = q.counters()
            letters = q.dead_letters()
            depth = q.depth()
            decode_counts = q.decode_counts()
    except BridgeError as exc:
        raise _fail(exc) from None
    console.print(f"waiting {depth}  " + "  ".join(f"{k} {v}" for k, v in counters.items()))
    implausible: Counter[tuple[str, str]] = Counter()
    for name, count in decode_counts.items():
        if name.startswith("implausible "):
            path, _, dbc_signal = name.removeprefix("implausible ").partition(" <- ")
            implausible[path, dbc_signal] += count
    _print_implausible(implausible)
    if letters:
        table = Table(title="dead letters (rejected by the oracle)")
        for column in ("sequence", "window start", "reason", "detail"):
            table.add_column(column)
        for letter in letters:
            table.add_row(
                str(letter.sequence),
                str(letter.window_start),
                letter.reason,
                str(letter.problem.get("detail", "")),
            )
        console.print(table)


@app.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the encrypted keystore.")],
) -> None:
    """Make a new device key and write it to an encrypted keystore (password from the env)."""
    password = os.environ.get("DIMO_BRIDGE_KEYSTORE_PASSWORD")
    if password is None:
        password = typer.prompt("keystore password", hide_input=True, confirmation_prompt=True)
    from device_bridge.keys import DeviceKey, write_keystore

    key = DeviceKey.from_private_key(secrets.token_bytes(32))
    write_keystore(path, key, password)
    console.print(f"device {key.address} -> {path}")
