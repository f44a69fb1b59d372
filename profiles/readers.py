"""Reading a profile data folder: files in, validated `Profiles` out.

A data folder holds one file per table, named after it (`taxpayers.csv`, `indicators.parquet`, …).
CSV files may be UTF-8 (with or without BOM), UTF-16 with BOM, or GBK/GB18030 — the encoding is
detected — and every CSV column is read as text first, so nothing is lost before validation.
Structural problems (missing table or required column, unreadable file) raise
`ProfileStructureError` with the file and the fix; row problems go to the quarantine.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
from collections.abc import Collection
from pathlib import Path

import polars as pl

from profiles.derived import add_owner_business_income
from profiles.errors import ProfileStructureError
from profiles.schema import KIND_TEXT, TABLES, Table
from profiles.validation import ROW, Profiles, RawTable, validate_tables

REQUIRED_TABLES = ("taxpayers", "indicators")
SUFFIXES = (".csv", ".parquet")
_SEPARATORS = (",", "\t", ";", "|")
#: What a damaged or malformed file makes the readers raise (programming errors still surface).
_READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError)


def load_profiles(source: str | Path, *, known_incentives: Collection[str] | None = None) -> Profiles:
    """Read and validate every table of a data folder.

    `known_incentives` (rule ids and claim codes) makes claims of anything else a quarantined row;
    None skips that check.
    """
    root = Path(source)
    if not root.exists():
        raise ProfileStructureError(f"数据目录 {root} 不存在：请检查 --data 参数指向的路径")
    if not root.is_dir():
        raise ProfileStructureError(
            f"{root} 不是目录：--data 应指向存放 taxpayers.csv、indicators.csv 等文件的文件夹"
        )
    files = find_table_files(root)
    raw: dict[str, RawTable] = {}
    sources: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    for name, path in files.items():
        frame, digest = read_table_file(path)
        check_columns(TABLES[name], frame, path)
        raw[name] = RawTable(name=name, frame=frame, file=path.name)
        sources[name] = path
        hashes[name] = digest
    tables, quarantine = validate_tables(raw, known_incentives=known_incentives)
    tables["indicators"] = add_owner_business_income(tables["taxpayers"], tables["indicators"])
    return Profiles(**tables, quarantine=quarantine, sources=sources, input_hashes=hashes)


def find_table_files(root: Path) -> dict[str, Path]:
    """The file of each table present in `root`; a missing required table is a structural error."""
    found: dict[str, list[Path]] = {name: [] for name in TABLES}
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix.lower() in SUFFIXES and path.stem in found:
            found[path.stem].append(path)
    out: dict[str, Path] = {}
    for name, paths in found.items():
        if len(paths) > 1:
            listed = "、".join(p.name for p in paths)
            raise ProfileStructureError(
                f"{root} 中 {name} 表有多个文件（{listed}）：每张表只能有一个文件，请删除或改名多余的文件"
            )
        if paths:
            out[name] = paths[0]
        elif name in REQUIRED_TABLES:
            near = [p.name for p in root.iterdir() if p.is_file()]
            guess = difflib.get_close_matches(f"{name}.csv", near, n=1, cutoff=0.6)
            hint = f"（目录中有 {guess[0]}，是否需要改名？）" if guess else ""
            raise ProfileStructureError(
                f"{root} 中缺少 {name} 表{hint}：请提供 {name}.csv 或 {name}.parquet（文件名即表名）"
            )
    return out


def read_table_file(path: Path) -> tuple[pl.DataFrame, str]:
    """The raw table of one file (with ROW) and the sha256 of its bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfileStructureError(f"{path} 无法读取（{exc.strerror}）：请检查文件权限") from None
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, data), digest
    return _read_csv(path, data), digest


def _read_parquet(path: Path, data: bytes) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(data)).rechunk()  # one chunk: later steps align columns
    except _READ_ERRORS as exc:  # polars and pyarrow raise several kinds for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProfileStructureError(
            f"{path} 不是可读的 Parquet 文件（{first}）：请重新导出该表，或改用 CSV"
        ) from None
    frame = frame.rename({c: c.strip() for c in frame.columns if c != c.strip()})
    table = TABLES.get(path.stem)
    if table is not None:
        _check_parquet_types(table, frame, path)
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))


#: Parquet types a column of each contract kind may be stored as (anything else is refused).
_TEXTUAL = (pl.String, pl.Categorical, pl.Enum, pl.Null)


def _parquet_type_ok(kind: str, dtype: pl.DataType) -> bool:
    if isinstance(dtype, _TEXTUAL):
        return True
    if kind in ("money", "number", "int"):
        return dtype.is_numeric()
    if kind == "date":
        return isinstance(dtype, pl.Date | pl.Datetime)
    if kind == "bool":
        return isinstance(dtype, pl.Boolean) or dtype.is_integer()
    return dtype.is_numeric() and kind in ("id", "string", "period")  # e.g. a period stored as 2025


def _check_parquet_types(table: Table, frame: pl.DataFrame, path: Path) -> None:
    """A contract column stored as a type it cannot be read from (a list, a struct, a date for money…)."""

    wrong = [(c, frame.schema[c.name]) for c in table.columns
             if c.name in frame.columns and not _parquet_type_ok(c.kind, frame.schema[c.name])]
    if wrong:
        lines = [f"  列 {c.name!r}（{c.label}）的类型是 {dtype}，应为{KIND_TEXT[c.kind]}" for c, dtype in wrong]
        raise ProfileStructureError(
            f"{path} 有 {len(wrong)} 列的类型无法按契约读取：\n" + "\n".join(lines)
            + "\n请按 profiles/README.md 的类型重新导出这些列（文本列也可存为字符串）")


def decode_csv(path: Path, data: bytes) -> tuple[bytes, str]:
    """UTF-8 bytes of a CSV file and the encoding it was in (utf-8, utf-8-sig, utf-16, gb18030)."""
    if data.startswith(codecs.BOM_UTF8):
        body = data[len(codecs.BOM_UTF8) :]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProfileStructureError(
                f"{path} 声明为 UTF-8（有 BOM）但含有无法解码的字节：请用 UTF-8 或 GBK 重新保存"
            ) from None
        return body, "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-16"
        except UnicodeDecodeError:
            raise ProfileStructureError(f"{path} 的 UTF-16 内容无法解码：请另存为 UTF-8 CSV") from None
    if data.isascii():
        return data, "utf-8"
    try:
        data.decode("utf-8")
        return data, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError:
        raise ProfileStructureError(
            f"{path} 的编码无法识别（既不是 UTF-8 也不是 GBK/GB18030）：请在 Excel 中另存为“CSV UTF-8”"
        ) from None


def _header(path: Path, text: bytes) -> tuple[list[str], str]:
    """The header's column names and the separator (the commonest of , tab ; | in the header)."""
    first = text.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    sep = max(_SEPARATORS, key=first.count) if any(s in first for s in _SEPARATORS) else ","
    names = [c.strip() for c in next(csv.reader([first], delimiter=sep))] if first.strip() else []
    if not names or not any(names):
        raise ProfileStructureError(f"{path} 没有表头：第一行应为列名，如 taxpayer_id,period,…")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProfileStructureError(f"{path} 的表头有重复的列名 {', '.join(dupes)}：每个列名只能出现一次")
    if "" in names:
        raise ProfileStructureError(f"{path} 的表头第 {names.index('') + 1} 列没有列名：请补上列名或删除该列")
    return names, sep


def _read_csv(path: Path, data: bytes) -> pl.DataFrame:
    if not data.strip():
        raise ProfileStructureError(f"{path} 是空文件：至少应有一行表头")
    text, _encoding = decode_csv(path, data)
    names, sep = _header(path, text)
    try:
        frame = pl.read_csv(
            io.BytesIO(text),
            separator=sep,
            has_header=True,
            new_columns=names,
            infer_schema=False,
            row_index_name=ROW,
            row_index_offset=2,
        )
    except _READ_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProfileStructureError(
            f"{path} 无法按 CSV 解析（{first}）：常见原因是某行字段数多于表头（值中含未加引号的 "
            f"{sep!r}）或引号不成对；请修正该文件"
        ) from None
    frame = frame.with_columns(pl.col(ROW).cast(pl.Int64))
    # rows of a file whose quoted values span lines: number them by their first physical line
    lines = text.count(b"\n") + (0 if text.endswith(b"\n") else 1)
    if frame.height and lines != frame.height + 1 and b'"' in text:
        starts = _record_lines(text, sep)
        if len(starts) == frame.height:
            frame = frame.with_columns(pl.Series(ROW, starts, dtype=pl.Int64))
    data_columns = [c for c in frame.columns if c != ROW]
    blank = frame.select(pl.all_horizontal([pl.col(c).is_null() for c in data_columns])).to_series()
    return frame.filter(~blank) if blank.any() else frame


def _record_lines(text: bytes, sep: str) -> list[int]:
    """First physical line of each data record (header = line 1), for files with multi-line values."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))  # a cell may be as long as the file (its cap is checked later)
    try:
        return _record_starts(text, sep)
    finally:
        csv.field_size_limit(limit)


def _record_starts(text: bytes, sep: str) -> list[int]:
    reader = csv.reader(io.StringIO(text.decode("utf-8"), newline=""), delimiter=sep)
    starts = []
    previous = 0
    for i, _record in enumerate(reader):
        if i:
            starts.append(previous + 1)
        previous = reader.line_num
    return starts


def check_columns(table: Table, frame: pl.DataFrame, path: Path) -> None:
    """Every required column present; the message names each missing one and the closest header."""
    present = [c for c in frame.columns if c != ROW]
    missing = [c for c in table.columns if c.required and c.name not in present]
    if not missing:
        return
    lines = []
    for col in missing:
        guess = difflib.get_close_matches(col.name, present, n=1, cutoff=0.5)
        hint = f"；文件中最接近的列名是 {guess[0]!r}，是否应改名为 {col.name!r}？" if guess else ""
        lines.append(f"  缺少必需的列 {col.name!r}（{col.label}）{hint}")
    raise ProfileStructureError(
        f"{path} 缺少 {len(missing)} 个必需的列：\n"
        + "\n".join(lines)
        + f"\n请在表头补上这些列（可以留空值）。{table.name} 表的列见 profiles/README.md。"
    )
