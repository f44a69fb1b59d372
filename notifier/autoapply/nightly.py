"""The nightly's part of 免申即享: record tonight's automatic findings as listed and write the lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy.engine import Engine

from engine.catalogue import Catalogue
from notifier.autoapply.ledger import ListingResult, record_listed, state_counts
from notifier.autoapply.lists import AutoApplyList, listing_rows, write_lists


@dataclass(frozen=True)
class AutoApplyNight:
    listing: ListingResult
    lists: tuple[AutoApplyList, ...]
    ledger: dict[str, int]  # entries per state after tonight

    def counts(self) -> dict[str, int]:
        """For run.json and the run report: tonight's list and the ledger's totals."""
        return {
            "listed": len(self.listing.entries),  # rows on tonight's lists
            "new": self.listing.new,
            "relisted": self.listing.relisted,
            "already_applied": self.listing.already_applied,
            "authorities": len(self.lists),
            "ledger_listed": self.ledger.get("listed", 0),
            "applied": self.ledger.get("applied", 0),
        }


def list_automatic(engine: Engine, catalogue: Catalogue, findings: pl.DataFrame, out_dir: Path, *,
                   as_of: date, run_id: str) -> AutoApplyNight:
    listing = record_listed(engine, listing_rows(findings, catalogue), as_of=as_of, run_id=run_id)
    lists = write_lists(listing.entries, out_dir, as_of=as_of)
    return AutoApplyNight(listing, tuple(lists), state_counts(engine))
