"""lmstat's report parsed: the vendors' documented examples and the FAKE lmutil (run as
the real command would be) in every state a license server can be in."""

# ruff: noqa: E501 (lmstat's lines kept as the tool prints them)
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.common.lmstat import parse_lmstat
from tests.helpers import FAKES, wait_for

LMUTIL = FAKES / "flexlm" / "lmutil"
LICENSED = FAKES / "flexlm" / "licensed"
SERVER = "1055@lic01"

# ARM knowledge article ka4037 "How can I tell how many licenses are in use?" (verbatim
# layout of its `lmutil lmstat -a` example).
ARM_EXAMPLE = """\
lmutil - Copyright (c) 1989-2006 by Macrovision Corporation. All rights reserved.
Flexible License Manager status on Tue 6/2/2009 13:50

[Detecting lmgrd processes...]
License server status: 8224@myserver
    License file(s) on myserver C:\\Licenses\\mylicensefile.txt:

    myserver: license server UP (MASTER) v10.8.8.0

Vendor daemon status (on myserver):

    armlmd: UP v10.8.8.0

Feature usage info:

Users of rvd_arm:  (Total of 10 licenses issued;  Total of 1 license in use)

  "rvd_arm" v4.0, vendor: armlmd
  floating license

    ngnere clientpc CLIENTPC (v4.0) (myserver/8224 301), start Thu 6/2 14:01

Users of rvd_rtos:  (Total of 10 licenses issued;  Total of 0 licenses in use)

Users of rvd_trace:  (Total of 10 licenses issued;  Total of 0 licenses in use)
"""

# A triad with one host unreachable, checkouts of many licences, a lingering one and a
# user name with a space (the layouts of flexlm_exporter's lmstat_server_down.txt and
# lmstat_app1.txt fixtures).
TRIAD = """\
lmutil - Copyright (c) 1989-2016 Flexera Software LLC. All Rights Reserved.
Flexible License Manager status on Thu 11/23/2017 15:08

License server status: 28000@host1,28000@host2,28000@host3
    License file(s) on host1: /usr/local/flexlm/licenses/license.dat.app1:

host1: license server UP v11.13.0
host2: license server UP (MASTER) v11.13.0
host3: Cannot connect to license server system. (-15,570:115 "Operation now in progress")

Vendor daemon status (on host2):

    daemon: UP v11.13.1
Feature usage info:

Users of feature2:  (Total of 144 licenses issued;  Total of 39 licenses in use)

  "feature2" v31.0, vendor: feature2, expiry: 1-jan-0
  floating license

    user1 server9 /dev/tty (v61.9) (host3.domain.net/27002 18856), start Fri 10/20 14:12, 16 licenses
    John Doe John_D "U,K$`Ct (v61.4) (host3.domain.net/27002 4611), start Wed 7/7 15:17
    cmfy212 UFRTR1LT0087375 UFRTR1LT00873750.0 (v1.00) (host3.domain.net/28000 1401), start Wed 5/23 5:59, 22 licenses  (linger: 885098 / 1340160)

Users of missing:  (Error: 1 licenses, unsupported by licensed server)
"""


def test_vendor_examples_give_totals_and_every_checkout() -> None:
    arm = parse_lmstat(ARM_EXAMPLE, "8224@myserver")
    assert arm.ok and set(arm.features) == {"rvd_arm", "rvd_rtos", "rvd_trace"}
    used = arm.features["rvd_arm"]
    assert (used.issued, used.in_use) == (10, 1)
    assert [(c.user, c.host, c.licenses) for c in used.checkouts] == [("ngnere", "clientpc", 1)]

    triad = parse_lmstat(TRIAD, "28000@host1")
    assert triad.ok  # two of three hosts answer: the figures hold
    f2 = triad.features["feature2"]
    assert (f2.issued, f2.in_use) == (144, 39)
    assert [(c.user, c.licenses) for c in f2.checkouts] == [("user1", 16), ("John", 1),
                                                            ("cmfy212", 22)]
    missing = triad.features["missing"]
    assert missing.issued is None and missing.error == "unsupported by licensed server"


def test_server_down_vendor_down_and_garbage_are_errors_never_figures() -> None:
    down = parse_lmstat('lmstat - Copyright (c) 1989-2004 by Macrovision Corporation.\n'
                        'Flexible License Manager status on Wed 03/31/2021 09:12\n\n'
                        'Error getting status: Cannot connect to license server (-15,570:111 '
                        '"Connection refused")\n', SERVER)
    assert not down.ok and down.error is not None and down.error.startswith("server down")
    assert not parse_lmstat("", SERVER).ok
    assert not parse_lmstat("Segmentation fault\n", SERVER).ok
    assert not parse_lmstat("Users of x: (Total of lots)\n", SERVER).features["x"].issued


def fake(tmp_path: Path, status: str = "up", **features: int) -> Path:
    folder = tmp_path / SERVER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.json").write_text(json.dumps({"status": status, "features": features}))
    return tmp_path


def lmstat(state: Path, timeout_s: float = 10) -> str:
    result = subprocess.run([sys.executable, str(LMUTIL), "lmstat", "-a", "-c", SERVER],
                            capture_output=True, text=True, timeout=timeout_s, check=False,
                            env={"FAKE_FLEXLM_DIR": str(state), "PATH": "/usr/bin:/bin"})
    return result.stdout + result.stderr


def test_fake_lmutil_lists_outside_checkouts_until_their_process_ends(tmp_path: Path) -> None:
    state = fake(tmp_path, anshpc=16, electronics_desktop=4)
    assert parse_lmstat(lmstat(state), SERVER).features["anshpc"].in_use == 0
    holder = subprocess.Popen([sys.executable, str(LICENSED), SERVER, "anshpc:5", "--",
                               "sleep", "30"], env={"FAKE_FLEXLM_DIR": str(state),
                                                    "PATH": "/usr/bin:/bin"})
    try:
        report = wait_for(lambda: parse_lmstat(lmstat(state), SERVER),
                          lambda r: r.features["anshpc"].in_use > 0, 10, "the checkout")
        anshpc = report.features["anshpc"]
        assert (anshpc.issued, anshpc.in_use) == (16, 5)
        assert [c.licenses for c in anshpc.checkouts] == [5]
    finally:
        holder.kill()
        holder.wait()
    assert parse_lmstat(lmstat(state), SERVER).features["anshpc"].in_use == 0


@pytest.mark.parametrize(("status", "why"), [("down", "server down"),
                                             ("vendor-down", "vendor daemon down"),
                                             ("garbage", "unreadable")])
def test_fake_lmutil_failures_parse_as_errors(tmp_path: Path, status: str, why: str) -> None:
    report = parse_lmstat(lmstat(fake(tmp_path, status, anshpc=16)), SERVER)
    assert not report.ok and report.error is not None and report.error.startswith(why)


def test_fake_lmutil_leaves_out_a_feature_the_server_does_not_serve(tmp_path: Path) -> None:
    report = parse_lmstat(lmstat(fake(tmp_path, electronics_desktop=4)), SERVER)
    assert report.ok and "anshpc" not in report.features


def test_the_poller_cuts_off_a_hung_lmstat_and_reports_a_missing_lmutil(tmp_path: Path) -> None:
    import os
    from types import SimpleNamespace

    import fakeredis

    from simfarm.common.settings import Settings
    from simfarm.workers.license_poller import LicensePoller

    def poller(lmutil: str) -> LicensePoller:
        settings = Settings(licenses=[{"name": "anshpc", "count": 16, "server": SERVER}],
                            license_lmutil=lmutil, license_poll_timeout_s=0.5)
        ctx = SimpleNamespace(settings=settings, redis=fakeredis.FakeRedis(), nodes=None,
                              node_name="t")
        return LicensePoller(ctx, is_leader=lambda: True)  # type: ignore[arg-type]

    os.environ["FAKE_FLEXLM_DIR"] = str(fake(tmp_path, "hang", anshpc=16))
    try:
        hung = poller(str(LMUTIL)).poll(SERVER)  # killed at the timeout, no process left
    finally:
        del os.environ["FAKE_FLEXLM_DIR"]
    assert hung.error == "no answer within 0.5 s"
    missing = poller(str(tmp_path / "no-lmutil")).poll(SERVER)
    assert missing.error is not None and "not found (license_lmutil)" in missing.error
