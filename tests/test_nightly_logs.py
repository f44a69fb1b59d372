"""Structured logs: JSON lines, and taxpayer ids masked in every record whoever logs it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.nightly.logs import LOG_FILE, mask_text, setup_logging
from tests.builders.nightly import taxpayer_id

TID = taxpayer_id(7)  # a valid 18-character credit code
MASKED = TID[:4] + "*" * 10 + TID[-4:]


@pytest.fixture()
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = setup_logging(level="DEBUG", console="off", log_dir=tmp_path)
    assert path is not None
    yield path
    setup_logging(console="off", log_dir=None)  # remove the handlers again


def _records(path: Path) -> list[dict[str, object]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_mask_text() -> None:
    assert mask_text(f"纳税人 {TID} 的信函") == f"纳税人 {MASKED} 的信函"
    assert mask_text(f"{TID},{TID}") == f"{MASKED},{MASKED}"
    # not inside longer tokens (hashes, paths with more characters) and not lower-case hex
    digest = "ab" * 32
    assert mask_text(digest) == digest
    assert mask_text("X" + TID) == "X" + TID
    assert mask_text("run 20260415-1, 2026-04-15") == "run 20260415-1, 2026-04-15"


def test_every_record_is_json_and_masked(log_file: Path) -> None:
    log = logging.getLogger("zhixiang.test")
    log.info("信函已生成：%s", TID, extra={"taxpayer_id": TID, "run_id": "20260415-1", "note": f"见 {TID}"})
    logging.getLogger("apscheduler.scheduler").warning(f"third-party text with {TID}")
    try:
        raise ValueError(f"bad row for {TID}")
    except ValueError:
        log.exception("failed")
    records = _records(log_file)
    assert [r["logger"] for r in records] == ["zhixiang.test", "apscheduler.scheduler", "zhixiang.test"]
    first = records[0]
    assert first["msg"] == f"信函已生成：{MASKED}"
    assert first["taxpayer_id"] == MASKED and first["note"] == f"见 {MASKED}" and first["run_id"] == "20260415-1"
    assert {"ts", "level", "pid"} <= set(first)
    assert MASKED in str(records[1]["msg"])
    assert "ValueError" in str(records[2]["exc"]) and MASKED in str(records[2]["exc"])
    assert TID not in log_file.read_text(encoding="utf-8")


def test_an_id_field_is_masked_whatever_its_shape(log_file: Path) -> None:
    logging.getLogger("zhixiang.test").info("batch", extra={"taxpayer_ids": ["330106123456789", TID]})
    record = _records(log_file)[-1]
    assert record["taxpayer_ids"] == ["3301*******6789", MASKED]


def test_console_text_is_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(level="INFO", console="text", log_dir=None)
    try:
        logging.getLogger("zhixiang.test").info("处理 %s", TID, extra={"run_id": "r1"})
    finally:
        setup_logging(console="off", log_dir=None)
    err = capsys.readouterr().err
    assert MASKED in err and TID not in err and "[run_id=r1]" in err
    assert LOG_FILE == "zhixiang.jsonl"
