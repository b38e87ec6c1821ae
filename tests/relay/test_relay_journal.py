"""Journal: JSON lines, flushed per record, size rotation, and a broken disk never stops delivery."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from comfyui_exporter.relay.config import JournalConfig
from comfyui_exporter.relay.journal import Journal, read_journal


def test_records_are_flushed_json_lines(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(tmp_path / "j.jsonl", fsync=True))
    journal.write("received", id="a", payload={"summary": "显存不足 🔥", "bad": "\ud83d"})
    lines = (tmp_path / "j.jsonl").read_text(encoding="utf-8").splitlines()  # readable before close()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "received" and record["payload"]["summary"] == "显存不足 🔥"
    assert record["payload"]["bad"] == "\ud83d"  # a lone surrogate survives, escaped, without a crash
    assert record["ts"].endswith("+00:00")
    journal.close()


def test_rotation_keeps_the_configured_number_of_backups(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(JournalConfig(path, max_bytes=1000, backups=2, fsync=False))
    for i in range(100):
        journal.write("received", id=i, pad="x" * 50)
    journal.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["j.jsonl", "j.jsonl.1", "j.jsonl.2"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    ids = [r["id"] for name in ("j.jsonl.2", "j.jsonl.1", "j.jsonl") for r in read_journal(tmp_path / name)]
    assert ids == sorted(ids) and ids[-1] == 99  # newest last, contiguous


def test_unwritable_journal_counts_and_logs_but_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocked").write_text("a file where a directory should be")
    errors = []
    journal = Journal(JournalConfig(tmp_path / "blocked" / "j.jsonl"), on_error=lambda: errors.append(1))
    with caplog.at_level(logging.ERROR):
        journal.write("received", id="x")
    assert errors and "cannot be written" in caplog.text
