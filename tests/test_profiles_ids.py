"""Credit-code checks: real published codes, both check digits, and scalar == vectorized."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.ids import (
    CHARSET,
    credit_code_problem,
    credit_code_problem_py,
    gb11714_check_char,
    gb32100_check_char,
    is_valid_credit_code,
    make_credit_code,
)

# Published codes: the GB 32100-2015 example and well-known companies' business licences.
REAL_CODES = [
    "91350100M000100Y43",  # GB 32100-2015 standard's example
    "91330100799655058B",  # 阿里巴巴（中国）有限公司
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "914403001922038216",  # 华为技术有限公司
    "91110000710925462X",  # 中国石油天然气股份有限公司
]


def _vectorized(values: list[str | None]) -> list[str | None]:
    return (
        pl.DataFrame({"s": values}, schema={"s": pl.String})
        .select(credit_code_problem(pl.col("s")))["s"]
        .to_list()
    )


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_are_valid(code: str) -> None:
    assert is_valid_credit_code(code)
    assert _vectorized([code]) == [None]


def test_each_kind_of_problem_has_its_reason() -> None:
    # organisation-code check broken (17th char 4 -> 5), GB 32100 check recomputed so only GB 11714 fails
    first17 = "91350100M000100Y5"
    org_broken = first17 + gb32100_check_char(first17)
    cases = {
        "9135010": "应为18位，实际为7位",
        "91350100M000100Y4O": "含非法字符",
        "91350100m000100Y43": "含非法字符",
        "91350100M000100Y44": "第18位应为 3，实际为 4",
        org_broken: "组织机构代码校验码错误（GB 11714）：第17位应为 4，实际为 5",
    }
    for code, fragment in cases.items():
        scalar = credit_code_problem_py(code)
        assert scalar is not None and fragment in scalar, (code, scalar)
        assert _vectorized([code]) == [scalar]
    assert credit_code_problem_py(None) is None and _vectorized([None]) == [None]


def test_make_credit_code_builds_valid_codes() -> None:
    code = make_credit_code("330106", "MA2H0000", category="2")
    assert code.startswith("92330106MA2H0000") and is_valid_credit_code(code)
    assert gb11714_check_char("79965505") == "8"
    with pytest.raises(ValueError):
        make_credit_code("33010", "MA2H0000")
    assert not is_valid_credit_code(12345)


_CODE_CHARS = st.sampled_from(CHARSET + "IOSVZa -９")


@st.composite
def _codes(draw: st.DrawFn) -> str:
    """Valid codes, valid codes with one character changed, and arbitrary strings."""
    kind = draw(st.integers(0, 2))
    body = draw(st.text(alphabet=CHARSET, min_size=8, max_size=8))
    region = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    code = make_credit_code(region, body)
    if kind == 0:
        return code
    if kind == 1:
        i = draw(st.integers(0, 17))
        return code[:i] + draw(_CODE_CHARS) + code[i + 1 :]
    return draw(st.text(alphabet=_CODE_CHARS, min_size=0, max_size=20))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_codes(), st.none()), min_size=1, max_size=40))
def test_vectorized_agrees_with_scalar(values: list[str | None]) -> None:
    assert _vectorized(values) == [credit_code_problem_py(v) for v in values]
