"""Parses ``lmutil lmstat -a -c port@host``: FlexLM's (FlexNet Publisher's) status report.

The format, as documented in the FlexNet Publisher License Administration Guide
("lmstat", docs.revenera.com) and shown in vendors' own examples (ARM knowledge article
ka4037 "How can I tell how many licenses are in use?")::

    License server status: 1055@lic01
        License file(s) on lic01: /ansys_inc/shared_files/licensing/license_files/ansyslmd.lic:

        lic01: license server UP (MASTER) v11.19.2

    Vendor daemon status (on lic01):

      ansyslmd: UP v11.19.2

    Feature usage info:

    Users of anshpc:  (Total of 16 licenses issued;  Total of 5 licenses in use)

      "anshpc" v2025.0506, vendor: ansyslmd, expiry: 31-dec-2025
      floating license

        alice ws12 ws12 (v2025.0506) (lic01/1055 1201), start Thu 1/9 9:02, 4 licenses
        bob ws07 /dev/pts/1 (v2025.0506) (lic01/1055 2210), start Thu 1/9 9:40

A checkout line without ``, N licenses`` holds one. A server that cannot be reached
prints ``Error getting status: Cannot connect to license server system. (-15,570:111
"Connection refused")`` (or, per host of a triad, ``host: Cannot connect ...``); a vendor
daemon that is down prints ``ansyslmd: The desired vendor daemon is down. (-97,121)``; a
feature asked for that the server does not serve prints ``Users of X:  (Error: 1
licenses, unsupported by licensed server)``, and with ``-a`` it is simply not listed.
Pure functions: the poller (:mod:`simfarm.workers.license_poller`) runs the command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_USERS = re.compile(r"^Users of (?P<name>\S+?):\s+\((?P<body>.*)\)\s*$")
_TOTALS = re.compile(r"^Total of (?P<issued>\d+) licenses? issued;\s+"
                     r"Total of (?P<used>\d+) licenses? in use$")
_FEATURE_ERROR = re.compile(r"^Error: (?P<what>.*)$")
_SERVER_UP = re.compile(r"^\s*(?P<host>\S+): license server UP\b")
_CANNOT_CONNECT = re.compile(r"Cannot connect to license server|"
                             r"License server machine is down or not responding")
_ERROR_STATUS = re.compile(r"^\s*(Error getting status|lmgrd is not running):\s*(?P<why>.*)$")
_VENDOR = re.compile(r"^\s+(?P<vendor>[\w.\-]+): (?P<rest>.*)$")
# "user host display (v1.0) (server/port handle), start Thu 1/9 9:02[, N licenses]..."
# User and display may contain spaces or odd characters: the line is read from the right.
_CHECKOUT = re.compile(
    r"^\s+(?P<who>.+?) \((?P<version>v[^)]*)\) \((?P<server>[^/\s]+)/(?P<port>\d+)"
    r"(?: (?P<handle>\d+))?\), start (?P<start>\w+ \d+/\d+ \d+:\d+)"
    r"(?:, (?P<count>\d+) licenses?)?")
_QUEUED = re.compile(r"queued for (?P<count>\d+) licenses?")


@dataclass(frozen=True)
class Checkout:
    """One checkout line: who holds how many licences of a feature."""

    user: str
    host: str
    display: str
    start: str
    licenses: int = 1


@dataclass
class FeatureUsage:
    """One ``Users of`` block."""

    name: str
    issued: int | None = None
    in_use: int = 0
    checkouts: list[Checkout] = field(default_factory=list)
    queued: int = 0
    error: str | None = None  # "unsupported by licensed server", "Uncounted, node-locked"


@dataclass
class ServerReport:
    """What one ``lmstat -a -c port@host`` said; ``error`` set when it said nothing
    usable (server down, vendor daemon down, unreadable output)."""

    server: str
    features: dict[str, FeatureUsage] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the report carries figures that can be trusted."""
        return self.error is None


def _checkout(line: str) -> Checkout | None:
    match = _CHECKOUT.match(line)
    if match is None:
        return None
    parts = match["who"].split()
    user = parts[0] if parts else "?"
    host = parts[1] if len(parts) > 1 else "?"
    display = " ".join(parts[2:])
    return Checkout(user, host, display, match["start"], int(match["count"] or 1))


def parse_lmstat(text: str, server: str) -> ServerReport:
    """The report in ``text`` (lmstat's stdout and stderr) of ``server``."""
    report = ServerReport(server)
    saw_header = saw_up = False
    connect_error: str | None = None
    vendor_down: list[str] = []
    in_vendors = False
    current: FeatureUsage | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith(("lmutil - ", "lmstat - ", "Flexible License Manager status")):
            saw_header = True
            continue
        error = _ERROR_STATUS.match(line)
        if error is not None:
            connect_error = error["why"].strip() or line.strip()
            continue
        if line.startswith("License server status:"):
            saw_header = True
            continue
        if _SERVER_UP.match(line):
            saw_up = True
            continue
        if _CANNOT_CONNECT.search(line) and current is None:
            connect_error = connect_error or line.split(": ", 1)[-1].strip()
            continue
        if line.startswith("Vendor daemon status"):
            in_vendors = True
            continue
        if line.startswith("Feature usage info"):
            in_vendors = False
            continue
        users = _USERS.match(line)
        if users is not None:
            in_vendors = False
            current = FeatureUsage(users["name"])
            report.features[current.name] = current
            body = users["body"].strip()
            totals = _TOTALS.match(body)
            feature_error = _FEATURE_ERROR.match(body)
            if totals is not None:
                current.issued, current.in_use = int(totals["issued"]), int(totals["used"])
            elif feature_error is not None:
                current.error = feature_error["what"].split(", ", 1)[-1]
            else:
                current.error = body
            continue
        if in_vendors:
            vendor = _VENDOR.match(line)
            if vendor is not None and not vendor["rest"].startswith("UP"):
                vendor_down.append(f"{vendor['vendor']}: {vendor['rest'].strip()}")
            continue
        if current is not None:
            checkout = _checkout(line)
            if checkout is not None:
                current.checkouts.append(checkout)
                continue
            queued = _QUEUED.search(line)
            if queued is not None:
                current.queued += int(queued["count"])
    if connect_error is not None and not saw_up:
        report.error = f"server down: {connect_error}"
    elif vendor_down and not report.features:
        report.error = f"vendor daemon down: {'; '.join(vendor_down)}"
    elif not report.features and not (saw_header and saw_up):
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")
        report.error = f"unreadable lmstat output: {first[:200]!r}"
    return report
