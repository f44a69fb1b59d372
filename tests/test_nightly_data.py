"""The nightly tests' data builder (tests/builders/nightly.py) follows the profile contract."""

from __future__ import annotations

from pathlib import Path

from tests.builders.nightly import build_data, write_data_folder


def test_builder_ids_are_valid_and_distinct() -> None:
    from profiles.ids import is_valid_credit_code

    data = build_data(60)
    ids = [t["taxpayer_id"] for t in data.taxpayers]
    assert len(set(ids)) == len(ids)
    assert all(is_valid_credit_code(i) for i in ids)


def test_builder_folder_loads_clean(tmp_path: Path) -> None:
    from engine.catalogue import DEFAULT_RULES_DIR, load_catalogue
    from profiles.readers import load_profiles

    catalogue = load_catalogue(DEFAULT_RULES_DIR)
    profiles = load_profiles(write_data_folder(tmp_path / "data"), known_incentives=catalogue.known_incentives)
    assert profiles.quarantine.height == 0, profiles.quarantine.to_dicts()[:3]
    assert profiles.taxpayers.height == 36


