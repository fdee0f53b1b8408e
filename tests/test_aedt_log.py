"""AEDT batch-log reading: levels, failure decision, progress (simfarm.workers.aedt_log)."""

from __future__ import annotations

from pathlib import Path

from simfarm.workers.aedt_log import (
    LogTail,
    ProgressTracker,
    batch_log_path,
    failure_reason,
    is_error_line,
    message_level,
    read_max_passes,
    read_target_delta_s,
    results_folder,
)

T = "(10:02:11 AM  Mar 03, 2025)"
# Written in the format of a real AEDT 2025.2 HFSS 3D Layout batch log.
LOG = (Path(__file__).parent / "data" / "hfss3dlayout_batch.log").read_text()


def test_message_levels_and_error_markers() -> None:
    assert message_level("[info] Project:a, x") == "info"
    assert message_level("[WARNING] Project:a, x") == "warning"
    assert message_level("Nets: GND,VDD (10:02 AM)") is None
    assert is_error_line("[error] Project:a, Design:b, Simulation completed with execution error")
    assert is_error_line("[fatal] Project:a, license lost")
    assert is_error_line("  *** ERROR *** solver died")
    # The word alone is not an error marker.
    assert not is_error_line("[info] Project:a, Error tolerance for the sweep set to 0.5%")
    assert not is_error_line("[warning] Project:a, Port error estimate is above the target")
    assert not is_error_line("Max error: 0.01")


def test_failure_reason() -> None:
    assert failure_reason(0, []) is None
    assert failure_reason(3, []) == "ansysedt exited with status 3"
    assert failure_reason(1, ["[error] x"]) == "ansysedt exited with status 1: [error] x"
    assert failure_reason(0, ["[error] a", "[error] b"]) == (
        "AEDT reported an error: [error] a (+1 more)"
    )
    assert failure_reason(None, []) == "ansysedt did not report an exit status"


def test_progress_through_a_whole_log() -> None:
    tracker = ProgressTracker(max_passes=10)
    snapshots = []
    for line in LOG.splitlines():
        if tracker.feed(line):
            snapshots.append(tracker.as_dict())
    assert snapshots[0]["phase"] == "adaptive" and snapshots[0]["adaptive_pass"] == 1
    mid = next(s for s in snapshots if s["delta_s"] is not None)
    assert (mid["adaptive_pass"], mid["max_passes"], mid["delta_s"]) == (2, 10, 0.41002)
    final = tracker.as_dict()
    assert final == {
        "phase": "done",
        "adaptive_pass": 2,
        "max_passes": 10,
        "target_delta_s": None,
        "adaptive_frequency": "8GHz",
        "delta_s": 0.41002,
        "converged": True,
        "sweep": "Interpolating",
        "sweep_frequencies": 101,
        "sweep_solved": 2,
        "last_frequency": "10GHz",
        "errors": 0,
    }
    assert tracker.completed_normally
    series = tracker.series()
    assert [(p["pass"], p["delta_s"], p["elements"]) for p in series["passes"]] == [
        (1, None, 1200), (2, 0.41002, 1800)]
    assert series["passes"][0]["frequency"] == "8GHz"
    assert series["converged"] is True
    assert series["sweep"] == {"type": "Interpolating", "frequencies": 101, "solved": 2,
                               "points": ["5GHz", "10GHz"]}


def test_progress_counts_errors_and_non_convergence() -> None:
    tracker = ProgressTracker()
    tracker.feed(f"[info] Project:p, S : [PROFILE]        Adaptive Passes did not converge {T}")
    tracker.feed(f"[error] Project:p, Design:d, Simulation completed with execution error {T}")
    assert tracker.converged is False
    assert tracker.as_dict()["errors"] == 1
    assert tracker.errors[0].startswith("[error] Project:p")


def test_project_file_locations() -> None:
    assert batch_log_path("/d/ddr.aedb") == Path("/d/ddr.log")
    assert batch_log_path("/d/a.b.aedt") == Path("/d/a.b.log")
    assert results_folder("/d/ddr.aedt") == Path("/d/ddr.aedtresults")


def test_read_max_passes(tmp_path: Path) -> None:
    project = tmp_path / "p.aedt"
    project.write_text(
        "$begin 'AnsoftProject'\n"
        "$begin 'Other'\nMaximumPasses=4\n$end 'Other'\n"
        "$begin 'Setup1'\nMaximumPasses=12\nMinimumPasses=1\n$end 'Setup1'\n"
        "$end 'AnsoftProject'\n"
    )
    assert read_max_passes(project, "Setup1") == 12
    assert read_max_passes(project) == 4
    assert read_max_passes(tmp_path / "x.aedb") is None
    assert read_max_passes(tmp_path / "missing.aedt") is None


def test_read_target_delta_s(tmp_path: Path) -> None:
    project = tmp_path / "p.aedt"
    project.write_text(
        "$begin 'Other'\nMaxDeltaS=0.1\n$end 'Other'\n"
        "$begin 'Setup1'\nMaximumPasses=12\nMaxDeltaS=0.02\n$end 'Setup1'\n"
    )
    assert read_target_delta_s(project, "Setup1") == 0.02
    assert read_target_delta_s(project) == 0.1
    assert read_target_delta_s(tmp_path / "x.aedb") is None


def test_log_tail_skips_earlier_runs_and_joins_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    log.write_text("old run line\n")
    tail = LogTail(log)
    assert tail.read_lines() == []
    with log.open("a") as handle:
        handle.write("[info] first\n[info] sec")
    assert tail.read_lines() == ["[info] first"]
    with log.open("a") as handle:
        handle.write("ond\r\nlast without newline")
    assert tail.read_lines() == ["[info] second"]
    assert tail.read_lines(final=True) == ["last without newline"]


def test_log_tail_on_missing_file(tmp_path: Path) -> None:
    tail = LogTail(tmp_path / "later.log")
    assert tail.read_lines() == []
    (tmp_path / "later.log").write_text("[info] a\n")
    assert tail.read_lines() == ["[info] a"]


def test_echo_filter_keeps_one_copy_of_lines_on_two_streams() -> None:
    from simfarm.workers.aedt_log import EchoFilter

    echoes = EchoFilter(window=3)
    assert echoes.first("stdout", "[info] pass 1")
    assert not echoes.first("aedt_log", "[info] pass 1")  # the batch log's copy
    assert echoes.first("aedt_log", "Ansys Electronics Desktop")  # only in the log
    assert echoes.first("stdout", "[info] pass 1")  # printed again later: a new line
    assert echoes.first("stdout", "  ")  # blank lines are never matched
    for n in range(5):
        assert echoes.first("stdout", f"only on stdout {n}")
    assert echoes.first("aedt_log", "[info] pass 1")  # beyond the window: kept
