"""Hangzhou districts and their tax bureaus: region codes, Chinese names, 主管税务机关 codes.

Used by the sample-data generator (credit-code region, district, tax_authority) and by letters,
which print the bureau's Chinese name for a `tax_authority` code. Codes follow the 11-digit
税务机关代码 pattern `1` + 6-digit 行政区划码 + `0000` (e.g. 13301060000 = 西湖区税务局).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class District:
    """One county-level division of Hangzhou and its tax bureau."""

    region_code: str  # GB/T 2260 行政区划码 (positions 3-8 of a credit code)
    name: str  # e.g. 西湖区
    bureau: str  # 国家税务总局杭州市西湖区税务局

    @property
    def tax_authority(self) -> str:
        """11-digit tax-authority code of the district bureau."""
        return f"1{self.region_code}0000"


def _district(code: str, name: str) -> District:
    city_level = name.endswith("区")
    bureau = f"国家税务总局杭州市{name}税务局" if city_level else f"国家税务总局{name}税务局"
    return District(code, name, bureau)


HANGZHOU_DISTRICTS: tuple[District, ...] = tuple(
    _district(code, name)
    for code, name in (
        ("330102", "上城区"),
        ("330105", "拱墅区"),
        ("330106", "西湖区"),
        ("330108", "滨江区"),
        ("330109", "萧山区"),
        ("330110", "余杭区"),
        ("330111", "富阳区"),
        ("330112", "临安区"),
        ("330113", "临平区"),
        ("330114", "钱塘区"),
        ("330122", "桐庐县"),
        ("330127", "淳安县"),
        ("330182", "建德市"),
    )
)

DISTRICTS_BY_REGION: dict[str, District] = {d.region_code: d for d in HANGZHOU_DISTRICTS}

#: 主管税务机关 code -> Chinese name, for letters and reports.
TAX_AUTHORITIES: dict[str, str] = {
    "13301000000": "国家税务总局杭州市税务局",
    **{d.tax_authority: d.bureau for d in HANGZHOU_DISTRICTS},
}


def tax_authority_name(code: str | None) -> str:
    """Chinese name of a tax-authority code; the code itself when it is not known here."""
    if code is None:
        return ""
    return TAX_AUTHORITIES.get(code, code)
