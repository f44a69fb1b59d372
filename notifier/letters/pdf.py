"""PDF letters with Typst: embedded Noto CJK glyphs, text that extracts back, ~100+ a second a core.

The PDF is laid out by Typst (the `typst` package) from `letter.typ` in the template folder, with the
letter passed as JSON in `sys.inputs` — taxpayer data is a value, never markup. One compiler is made
per process and reused, so fonts are loaded and parsed once. (WeasyPrint, used before, took ~0.7 s a
letter; see README "Letters at scale".)

What a template may reach:
* files: only below the folder holding `letter.typ` (Typst's project root; `read()`, `image()` and
  `#import` of a path outside it are refused by Typst itself);
* fonts: only the Noto CJK fonts installed by scripts/setup (and Typst's own embedded fonts), never the
  system's other fonts;
* network: none. Typst downloads `@preview` packages on import; the package folders are empty private
  ones and the worker process that compiles sends any HTTP(S) through a proxy address that refuses
  every connection, so an import of a package fails that letter.

PDFs are made in worker processes (`PdfPool`). A worker lays out a batch of letters (`PDF_BATCH`) as
one Typst document and cuts it into one PDF per letter at the pages `letter.typ` marks `<zx-letter>`
(qpdf copies the pages and the fonts they use): the per-document costs — subsetting four CJK fonts,
compressing them, the template's evaluation — are paid once a batch instead of once a letter, about
half of a letter's time. The read-back check reads the batch's pages once. A letter whose layout runs
too long (`timeout`) or grows too large (`max_bytes`) is still failed alone: a batch that fails or
overruns is laid out again one letter at a time (its worker killed and replaced when it overran), so
only the letter at fault fails. A bureau's `letter.typ` without the `<zx-letter>` mark is laid out one
letter at a time. A worker exits when its parent goes away (its pipe closes).

`PdfPool.submit`/`poll`/`drain` let the caller go on building letters while the workers lay out PDFs
(`render` is the same, waited for).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from notifier.letters.build import Letter, LetterError, OfficeSettings
from notifier.workers import die_with_parent

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PDF_TEMPLATE = "letter.typ"
PDF_TIMEOUT = 20.0  # seconds one letter's layout may take (a one-page letter takes ~10 ms)
PDF_MAX_BYTES = 4 * 1024 * 1024  # a letter is ~60-120 kB
#: The fonts a letter may use: Noto CJK as installed by fonts-noto-cjk (scripts/setup).
FONT_DIRS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto", "/usr/local/share/fonts")
FONT_FILES = ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc", "NotoSerifCJK-Regular.ttc", "NotoSerifCJK-Bold.ttc")
#: Letters a worker lays out as one Typst document (then cut into one PDF each): 16 takes ~0.3-0.5 s.
PDF_BATCH = 16
#: The mark `letter.typ` puts on each letter's first page (metadata: key, page, title) for the cut.
LETTER_MARK = "<zx-letter>"
#: What a worker lays out before its first letter (TypstPdf.warm_up): the four Noto CJK faces a letter uses.
WARM_UP = ('#set text(font: ("Noto Serif CJK SC",), lang: "zh")\n税费 *税费* '
           '#text(font: ("Noto Sans CJK SC",))[税费 *税费*]\n').encode()
WORKER_START_TIMEOUT = 120.0  # seconds a PDF worker may take to start and load its fonts
#: Where a worker sends HTTP(S): a port nothing listens on, so Typst's package download is refused.
DEAD_PROXY = "http://127.0.0.1:9"


class PdfTextError(LetterError):
    """A PDF letter whose text does not extract back to the letter's text: a failed build."""


class PdfError(LetterError):
    """A PDF letter could not be laid out (template error, time or size bound, a worker that died)."""


# ------------------------------------------------------------------------------------------- data


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "findings"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def letter_json(letter: Letter, office: OfficeSettings) -> str:
    """The letter as the Typst template reads it (`sys.inputs.letter`): every field, as text."""
    data = _plain(asdict(letter))
    data["office"] = _plain(asdict(office))
    return json.dumps(data, ensure_ascii=False)


def cover_json(authority: str, date_text: str, letters: Sequence[Mapping[str, Any]], *, sheets: int) -> str:
    """What the print file's cover sheet (print_cover.typ) reads."""
    return json.dumps({"authority": authority, "date_text": date_text, "count": len(letters), "sheets": sheets,
                       "letters": list(letters)}, ensure_ascii=False)


# ------------------------------------------------------------------------------------------ fonts


def font_dirs() -> list[str]:
    """The folders holding the Noto CJK fonts on this machine (found without fontconfig or network)."""
    found: list[str] = []
    for name in FONT_FILES:
        for folder in FONT_DIRS:
            if (Path(folder) / name).is_file():
                if folder not in found:
                    found.append(folder)
                break
    if not found:
        raise PdfError("找不到 Noto CJK 字体（/usr/share/fonts/opentype/noto）："
                       "请运行 scripts/setup 安装 fonts-noto-cjk")
    return found


# --------------------------------------------------------------------------------------- compiling


class TypstPdf:
    """One reused Typst compiler for a template folder (fonts parsed once)."""

    def __init__(self, templates: str | Path | None = None) -> None:
        import typst

        self.typst = typst
        folder = Path(templates) if templates is not None else TEMPLATES_DIR
        if not (folder / PDF_TEMPLATE).is_file():
            folder = TEMPLATES_DIR  # a bureau folder without its own letter.typ uses the packaged one
        self.root = folder.resolve()
        self.main = self.root / PDF_TEMPLATE
        empty = tempfile.mkdtemp(prefix="zhixiang-typst-")  # no packages, none cached
        fonts = typst.Fonts(include_system_fonts=False, include_embedded_fonts=True, font_paths=font_dirs())
        missing = [f for f in ("Noto Sans CJK SC", "Noto Serif CJK SC") if f not in fonts.families()]
        if missing:
            raise PdfError(f"找不到字体 {'、'.join(missing)}：请运行 scripts/setup 安装 fonts-noto-cjk")
        self.compiler = typst.Compiler(
            input=str(self.main), root=str(self.root), font_paths=fonts, ignore_system_fonts=True,
            package_path=empty, package_cache_path=empty,
        )
        #: whether the template lays out several letters in one document (it marks each letter's start)
        self.batches = LETTER_MARK in self.main.read_text(encoding="utf-8")

    def warm_up(self) -> None:
        """Lay out a few characters in each font: the fonts are parsed now, not in the first letter's time."""
        with contextlib.suppress(Exception):
            self.compiler.compile(input=WARM_UP, format="pdf", pdf_tags=False)

    def compile(self, data: str, *, main: str | None = None, max_bytes: int = PDF_MAX_BYTES) -> bytes:
        try:
            pdf = self.compiler.compile(input=str(self.root / main) if main else str(self.main), format="pdf",
                                        sys_inputs={"letter": data}, pdf_tags=False)
        except self.typst.TypstError as exc:
            raise PdfError(f"PDF 模板 {main or PDF_TEMPLATE} 排版失败：{_typst_message(exc)}") from exc
        if not isinstance(pdf, bytes):
            raise PdfError("PDF 模板生成了多个文件，应为一个 PDF")
        if len(pdf) > max_bytes:
            raise PdfError(f"PDF 信函 {len(pdf):,} 字节，超过 {max_bytes:,} 字节上限")
        return pdf


    def compile_letters(self, jobs: Sequence[PdfJob], *, max_bytes: int = PDF_MAX_BYTES,
                        ) -> list[tuple[str, bool, bytes | str]]:
        """The letters of `jobs` laid out as one document, cut into one PDF each and checked.

        Returns (key, ok, PDF or reason) per job. Raises when the batch as a whole fails (a template
        error, marks that do not match the letters): the caller lays the letters out one by one.
        """
        batch = self.compile("[" + ",".join(job.data for job in jobs) + "]", max_bytes=max_bytes * len(jobs))
        marks = json.loads(self.compiler.query(LETTER_MARK, field="value"))
        if [m.get("key") for m in marks] != [job.key for job in jobs]:
            raise PdfError("PDF 模板的信函标记与信函不符")
        starts = [int(m["page"]) - 1 for m in marks]
        out: list[tuple[str, bool, bytes | str]] = []
        import pikepdf

        with pikepdf.open(io.BytesIO(batch)) as doc:
            pages, unembedded = _doc_pages(doc)
            xmp = doc.Root.Metadata.read_bytes() if "/Metadata" in doc.Root else None
            info = {k: v for k, v in doc.docinfo.items() if k != "/Title"}
            ends = [*starts[1:], len(doc.pages)]
            for job, mark, start, end in zip(jobs, marks, starts, ends, strict=True):
                try:
                    if unembedded:
                        raise PdfTextError(f"{job.label}的PDF 信函未嵌入字体 {unembedded}："
                                           "请安装 fonts-noto-cjk（scripts/setup）")
                    pdf = _cut(doc, start, end, str(mark.get("title", "")), info, xmp)
                    if len(pdf) > max_bytes:
                        raise PdfError(f"PDF 信函 {len(pdf):,} 字节，超过 {max_bytes:,} 字节上限")
                    text = _squash("\n".join(pages[start:end]))
                    if job.check and any(t and _squash(t) not in text for t in job.expected):
                        check_pdf(pdf, job.expected, label=job.label)  # pypdf decides, as for one letter
                    out.append((job.key, True, pdf))
                except LetterError as exc:
                    out.append((job.key, False, str(exc)))
        return out


def _cut(doc: Any, start: int, end: int, title: str, info: Mapping[str, Any], xmp: bytes | None) -> bytes:
    """Pages start..end of a batch as a PDF of its own: the pages and the fonts they use, the document's
    language and viewer settings, its metadata with this letter's title and page count."""
    import pikepdf

    out = pikepdf.new()
    out.pages.extend(doc.pages[start:end])
    if "/Lang" in doc.Root:
        out.Root.Lang = pikepdf.String(str(doc.Root.Lang))
    if "/ViewerPreferences" in doc.Root:  # names only (/Direction /L2R)
        out.Root.ViewerPreferences = pikepdf.Dictionary(dict(doc.Root.ViewerPreferences.items()))
    for key, value in info.items():
        out.docinfo[key] = value
    out.docinfo["/Title"] = pikepdf.String(title)
    if xmp is not None:
        name = xml_escape(title).replace("\\", "\\\\").encode()
        data = _XMP_TITLE.sub(rb"\g<1>" + name + rb"\g<2>", xmp, count=1)
        data = _XMP_PAGES.sub(b"<xmpTPg:NPages>%d</xmpTPg:NPages>" % (end - start), data, count=1)
        out.Root.Metadata = out.make_stream(data, Type=pikepdf.Name.Metadata, Subtype=pikepdf.Name.XML)
    buf = io.BytesIO()
    # streams copied as they are (already compressed); the metadata as written above, not re-parsed
    out.save(buf, stream_decode_level=pikepdf.StreamDecodeLevel.none, compress_streams=True,
             fix_metadata_version=False)
    return buf.getvalue()


_XMP_TITLE = re.compile(rb"(<dc:title>\s*<rdf:Alt>\s*<rdf:li[^>]*>).*?(</rdf:li>)", re.S)
_XMP_PAGES = re.compile(rb"<xmpTPg:NPages>\d+</xmpTPg:NPages>")


def _typst_message(exc: Exception) -> str:
    message = str(getattr(exc, "message", "") or exc)
    diagnostic = str(getattr(exc, "diagnostic", "") or "")
    lines = [ln.strip() for ln in diagnostic.splitlines() if "┌─" in ln]
    return message.splitlines()[0] + (f"（{lines[0].removeprefix('┌─').strip()}）" if lines else "")


_compilers: dict[str, TypstPdf] = {}


def render_pdf(data: str, expected: Iterable[str], *, label: str = "", templates: str | Path | None = None,
               max_bytes: int = PDF_MAX_BYTES) -> bytes:
    """A letter (its `letter_json`) as a PDF, checked by `check_pdf`; one compiler per folder and process."""
    key = str(templates or "")
    compiler = _compilers.get(key)
    if compiler is None:
        compiler = _compilers[key] = TypstPdf(templates)
    pdf = compiler.compile(data, max_bytes=max_bytes)
    check_pdf(pdf, expected, label=label)
    return pdf


# ---------------------------------------------------------------------------------------- checking


def pdf_text(pdf: bytes) -> str:
    """All text pypdf extracts from a PDF, page after page."""
    return "\n".join(pdf_pages(pdf))


def pdf_pages(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_BLOCK = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)


class _GlyphMap(dict[int, str]):
    """glyph id → text, for str.translate: a glyph without a mapping gives no text."""

    def __missing__(self, key: int) -> str:
        return ""


def _cmap(stream: bytes) -> dict[int, str]:
    table: dict[int, str] = _GlyphMap()
    for block in _BLOCK.findall(stream):
        for src, dst in _BFCHAR.findall(block):
            table[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
    return table


def fast_pdf_pages(pdf: bytes) -> list[str]:
    """The text of each page, read through the fonts' ToUnicode maps with pypdf's parser.

    Enough for the check of a letter's own PDFs — two-byte Identity-H fonts with `bfchar` maps, as Typst
    writes them; a font it cannot read gives no text, so the check fails rather than passes. The
    benchmark checks every PDF with pypdf as well, and tests hold the two to the same text.
    """
    from pypdf import PdfReader

    return _reader_pages(PdfReader(io.BytesIO(pdf)))


def _reader_pages(reader: Any) -> list[str]:
    maps: dict[Any, dict[int, str]] = {}
    pages = []
    for page in reader.pages:
        fonts = (page.get("/Resources") or {}).get("/Font") or {}
        by_name: dict[bytes, dict[int, str]] = {}
        for name, ref in fonts.items():
            key = getattr(ref, "idnum", None)
            table = maps.get(key) if key is not None else None
            if table is None:
                tu = ref.get_object().get("/ToUnicode")
                table = _cmap(tu.get_object().get_data()) if tu is not None else {}
                if key is not None:
                    maps[key] = table
            by_name[name[1:].encode()] = table
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
        pages.append(_page_text(data, by_name))
    return pages




_PLAIN = rb"(?:\\.|[^\\()])*"
_NESTED = rb"\((?:\\.|[^\\()]|\(" + _PLAIN + rb"\))*\)"  # balanced parentheses need no escape, two levels
_TOKEN = re.compile(rb"\((?:\\.|[^\\()]|" + _NESTED + rb")*\)|<[0-9A-Fa-f\s]*>|/([^\s/\[\]()<>]+)\s+[-\d.]+\s+Tf",
                    re.S)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)
_ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _escape(m: re.Match[bytes]) -> bytes:
    e = m.group(1)
    if e[:1].isdigit():
        return bytes([int(e, 8) & 0xFF])
    return _ESCAPED.get(e, e)


def _page_text(data: bytes, fonts: Mapping[bytes, Mapping[int, str]]) -> str:
    """The text of the strings of a content stream, decoded with the font selected when each is shown.

    Strings are two-byte glyph ids (Identity-H). Literal strings with parentheses nested deeper than
    three levels are not read whole: the text comes out garbled, so the check falls back to pypdf.
    """
    table: Mapping[int, str] = {}
    parts: list[str] = []
    for m in _TOKEN.finditer(data):
        if m.group(1) is not None:
            table = fonts.get(m.group(1), {})
            continue
        token = m.group(0)
        if token[:1] == b"(":
            raw = token[1:-1]
            if b"\\" in raw:  # "\000" is every glyph's high byte: replaced at C speed, the rest one by one
                raw = raw.replace(b"\\000", b"\x00")
                if b"\\" in raw:
                    raw = _ESCAPE.sub(_escape, raw)
        else:
            raw = bytes.fromhex(re.sub(rb"\s", b"", token[1:-1]).decode("ascii"))
        try:
            parts.append(raw[: len(raw) // 2 * 2].decode("utf-16-be").translate(table))
        except UnicodeDecodeError:  # glyph ids in the surrogate range: one by one
            parts.append("".join(table.get(int.from_bytes(raw[x:x + 2], "big"), "")
                                 for x in range(0, len(raw) - 1, 2)))
    return "".join(parts)


def _squash(text: str) -> str:
    return "".join(text.split())


def check_pdf(pdf: bytes, expected: Iterable[str], *, label: str = "", thorough: bool = False) -> list[str]:
    """Raise PdfTextError unless every font is embedded and every expected text extracts back.

    Returns the text of each page. Whitespace is ignored in the comparison: line breaks fall where the
    layout puts them. The text is read through the fonts' ToUnicode maps with qpdf (`fast_pdf_pages`,
    ~1 ms), or with pypdf's own extraction when `thorough` (the benchmark checks every PDF that way too).
    """
    who = f"{label}的" if label else ""
    if thorough:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(pdf))
        fonts = [f.get_object() for page in reader.pages
                 for f in ((page.get("/Resources") or {}).get("/Font") or {}).values()]
        for font in fonts:
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            if not any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                raise PdfTextError(
                    f"{who}PDF 信函未嵌入字体 {font.get('/BaseFont')}：请安装 fonts-noto-cjk（scripts/setup）")
        pages = [p.extract_text() or "" for p in reader.pages]
    else:
        pages, unembedded = _qpdf_pages(pdf)
        if unembedded:
            raise PdfTextError(f"{who}PDF 信函未嵌入字体 {unembedded}：请安装 fonts-noto-cjk（scripts/setup）")
    text = _squash("\n".join(pages))
    missing = [t for t in expected if t and _squash(t) not in text]
    if missing and not thorough:  # the fast reading may miss what pypdf reads: pypdf decides
        return check_pdf(pdf, expected, label=label, thorough=True)
    if missing:
        raise PdfTextError(
            f"{who}PDF 信函的文字无法还原（缺少：{'、'.join(missing)}）；"
            "请确认已安装 Noto CJK 字体（scripts/setup）且模板未改变这些文字"
        )
    return pages


_FONT_FILES = ("/FontFile", "/FontFile2", "/FontFile3")


def _qpdf_pages(pdf: bytes) -> tuple[list[str], str]:
    """(the text of each page through the fonts' ToUnicode maps, the name of a font not embedded or "")."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return _doc_pages(doc)


def _doc_pages(doc: Any) -> tuple[list[str], str]:
    """`_qpdf_pages` of a document pikepdf holds open (each font's map read once)."""
    import pikepdf

    maps: dict[tuple[int, int], dict[int, str]] = {}
    pages = []
    for page in doc.pages:
        resources = page.obj.get("/Resources")
        fonts = resources.get("/Font") if resources is not None else None
        by_name: dict[bytes, dict[int, str]] = {}
        for name, font in (fonts.items() if fonts is not None else ()):
            key = font.objgen
            if key not in maps:
                descendants = font.get("/DescendantFonts")
                target = descendants[0] if descendants is not None else font
                descriptor = target.get("/FontDescriptor")
                if descriptor is None or not any(k in descriptor for k in _FONT_FILES):
                    return [], str(font.get("/BaseFont"))
                tu = font.get("/ToUnicode")
                maps[key] = _cmap(tu.read_bytes()) if tu is not None else {}
            by_name[name[1:].encode()] = maps[key]
        contents = page.obj.get("/Contents")
        if contents is None:
            data = b""
        elif isinstance(contents, pikepdf.Array):
            data = b"\n".join(c.read_bytes() for c in contents)
        else:
            data = contents.read_bytes()
        pages.append(_page_text(data, by_name))
    return pages, ""


def orphan_closing(pages: Sequence[str], closing: Iterable[str]) -> bool:
    """Whether the last page of a letter holds nothing but its closing (signature, date, page number)."""
    if len(pages) < 2:
        return False
    rest = _squash(pages[-1])
    for text in closing:
        rest = rest.replace(_squash(text), "", 1)
    return re.sub(r"第\d+页", "", rest) == ""


# ----------------------------------------------------------------------------------- worker processes


@dataclass(frozen=True)
class PdfJob:
    key: str
    data: str
    expected: tuple[str, ...]
    label: str = ""
    main: str | None = None  # another template of the folder (the print file's cover sheet)
    check: bool = True
    timeout: float = 0.0  # seconds on top of the pool's bound (a print file's cover lists thousands of letters)


Result = tuple[str, bool, bytes | str]  # (job key, ok, the PDF or why it failed)


def _one(compiler: TypstPdf, job: PdfJob, max_bytes: int) -> Result:
    """One letter laid out alone, and checked."""
    try:
        pdf = compiler.compile(job.data, main=job.main, max_bytes=max_bytes)
        if job.check:
            check_pdf(pdf, job.expected, label=job.label)
        return (job.key, True, pdf)
    except LetterError as exc:
        return (job.key, False, str(exc))
    except Exception as exc:  # one letter Typst cannot lay out fails alone
        return (job.key, False, f"PDF 信函生成失败：{type(exc).__name__}: {exc}")


def lay_out(compiler: TypstPdf, jobs: Sequence[PdfJob], max_bytes: int = PDF_MAX_BYTES) -> list[Result]:
    """A batch of jobs: as one document cut into letters when the template allows, else one by one.

    A batch that fails as a whole (one letter's data makes the template fail) is laid out again one
    letter at a time, so that only that letter fails.
    """
    if len(jobs) > 1 and compiler.batches and all(j.main is None for j in jobs):
        with contextlib.suppress(Exception):
            return compiler.compile_letters(jobs, max_bytes=max_bytes)
    return [_one(compiler, job, max_bytes) for job in jobs]


def _worker(conn: Connection, templates: str | None, max_bytes: int, parent_pid: int) -> None:
    """A PDF worker: no network, one batch of letters at a time, until its pipe closes or its parent dies.

    The closed pipe ends a worker waiting for letters; `die_with_parent` also ends one busy laying out a
    letter when the run is killed (kill -9 included), so none outlives the run that started it.
    """
    die_with_parent(parent_pid)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ[var] = DEAD_PROXY
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    compiler: TypstPdf | None = None
    try:
        compiler = TypstPdf(templates)  # fonts loaded before the first letter's clock starts
        compiler.warm_up()
        conn.send([("", True, b"")])
    except Exception as exc:
        conn.send([("", False, str(exc))])
    while True:
        try:
            jobs: list[PdfJob] | None = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if jobs is None:
            return
        try:
            if compiler is None:
                compiler = TypstPdf(templates)
            results = lay_out(compiler, jobs, max_bytes)
        except Exception as exc:  # no compiler: every letter of the batch fails with the reason
            results = [(job.key, False, f"PDF 信函生成失败：{exc}") for job in jobs]
        conn.send(results)


class PdfPool:
    """Worker processes laying out PDFs in batches, with a time and size bound per letter.

    `render(jobs)` returns, per job key, the PDF bytes or a PdfError. `submit(jobs)` hands letters over
    and returns at once; `poll()` returns the PDFs finished since (`wait=True`: at least one batch),
    `drain()` the rest. A batch over `timeout` seconds has its worker killed and replaced, and its letters
    are laid out again one at a time, each with the same bound: only a letter that overruns alone fails.
    """

    def __init__(self, jobs: int = 1, templates: str | Path | None = None, *, timeout: float | None = None,
                 max_bytes: int | None = None, batch: int | None = None) -> None:
        self.size = max(1, jobs)
        self.templates = str(templates) if templates is not None else None
        self.timeout = PDF_TIMEOUT if timeout is None else timeout
        self.max_bytes = PDF_MAX_BYTES if max_bytes is None else max_bytes
        self.batch = max(1, PDF_BATCH if batch is None else batch)
        self.ctx = get_context("spawn")  # the parent holds Polars' threads: never fork it
        self.workers: list[tuple[Any, Connection]] = []
        self.queue: deque[list[PdfJob]] = deque()  # batches waiting for a worker
        self.loose: list[PdfJob] = []  # letters waiting to fill a batch
        self.busy: dict[int, tuple[list[PdfJob], float]] = {}  # worker index → (batch, sent at)
        self.done: dict[str, bytes | PdfError] = {}

    def _start(self) -> tuple[Any, Connection]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, self.templates, self.max_bytes, os.getpid()), daemon=True,
                                name="zhixiang-pdf")
        proc.start()
        child.close()
        if parent.poll(WORKER_START_TIMEOUT):  # "ready" (fonts loaded), or why not
            try:
                [(_, ok, message)] = parent.recv()
            except (EOFError, OSError, ValueError):
                ok, message = False, "PDF 排版进程启动失败"
            if not ok:
                proc.kill()
                proc.join()
                raise PdfError(str(message))
        return proc, parent

    # -- handing letters over ------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Letters handed over whose PDF is not finished yet."""
        return len(self.loose) + sum(len(b) for b in self.queue) + sum(len(b) for b, _ in self.busy.values())

    def submit(self, jobs: Iterable[PdfJob]) -> None:
        for job in jobs:
            if job.main is not None or self.batch == 1:
                self.queue.append([job])
                continue
            self.loose.append(job)
            if len(self.loose) >= self.batch:
                self.queue.append(self.loose)
                self.loose = []
        self._pump(block=False)

    def poll(self, *, wait: bool = False) -> dict[str, bytes | PdfError]:
        """The PDFs finished so far (and not yet returned); `wait`: block until one more batch is done."""
        if wait and not self.done and (self.queue or self.busy or self.loose):
            if not self.queue and not self.busy:
                self._flush()
            self._pump(block=True)
        else:
            self._pump(block=False)
        done, self.done = self.done, {}
        return done

    def drain(self) -> dict[str, bytes | PdfError]:
        """Every PDF handed over, finished (letters short of a batch are laid out too)."""
        self._flush()
        while self.queue or self.busy:
            self._pump(block=True)
        done, self.done = self.done, {}
        return done

    def render(self, jobs: Sequence[PdfJob]) -> dict[str, bytes | PdfError]:
        self.submit(jobs)
        self._flush()
        keys = {job.key for job in jobs}
        while any(k not in self.done for k in keys) and (self.queue or self.busy):
            self._pump(block=True)
        return {k: self.done.pop(k) for k in keys if k in self.done}

    def _flush(self) -> None:
        if self.loose:
            self.queue.append(self.loose)
            self.loose = []

    # -- the workers ---------------------------------------------------------------------------

    def _pump(self, *, block: bool) -> None:
        """Send batches to idle workers and collect what they finished; `block`: wait for one batch."""
        try:
            want = min(self.size, len(self.busy) + len(self.queue))
            while len(self.workers) < want:
                self.workers.append(self._start())
        except PdfError as exc:  # no fonts, no typst: every PDF of the run fails with the reason
            if not self.workers:
                for batch in [*self.queue, self.loose]:
                    for job in batch:
                        self.done[job.key] = exc
                self.queue.clear()
                self.loose = []
                return
        try:
            self._send()
            if not self.busy:
                return
            if block:
                deadline = min(sent + self._bound(batch) for batch, sent in self.busy.values())
                timeout = max(0.0, deadline - time.monotonic())
            else:
                timeout = 0.0
            ready = wait([self.workers[i][1] for i in self.busy], timeout=timeout)
            for i in list(self.busy):
                conn = self.workers[i][1]
                batch, sent = self.busy[i]
                if conn in ready:
                    del self.busy[i]
                    try:
                        results = conn.recv()
                    except (EOFError, OSError):
                        self._replace(i)
                        self._failed(batch, PdfError("PDF 排版进程意外退出，信函未生成"))
                        continue
                    for key, ok, payload in results:
                        self.done[key] = payload if ok else PdfError(str(payload))
                elif time.monotonic() - sent >= self._bound(batch):
                    del self.busy[i]
                    self._replace(i)
                    self._failed(batch, PdfError(f"PDF 信函排版超过 {self._bound(batch):g} 秒上限，已中止，信函未生成"))
            self._send()
        except PdfError as exc:  # a worker that cannot be restarted: the letters left fail with the reason
            for batch in [*self.queue, *(b for b, _ in self.busy.values()), self.loose]:
                for job in batch:
                    self.done[job.key] = exc
            self.queue.clear()
            self.busy.clear()
            self.loose = []

    def _bound(self, batch: Sequence[PdfJob]) -> float:
        return self.timeout + max(job.timeout for job in batch)

    def _failed(self, batch: list[PdfJob], error: PdfError) -> None:
        """A batch whose worker overran or died: one letter fails; several are laid out again one by one."""
        if len(batch) == 1:
            self.done[batch[0].key] = error
        else:
            self.queue.extendleft([job] for job in reversed(batch))

    def _send(self) -> None:
        for i in range(len(self.workers)):
            if i not in self.busy and self.queue:
                batch = self.queue.popleft()
                try:
                    self.workers[i][1].send(batch)
                except (BrokenPipeError, OSError):
                    self._replace(i)
                    self.workers[i][1].send(batch)
                self.busy[i] = (batch, time.monotonic())

    def _replace(self, i: int) -> None:
        proc, conn = self.workers[i]
        proc.kill()
        proc.join()
        conn.close()
        self.workers[i] = self._start()

    def close(self) -> None:
        for _, conn in self.workers:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        for proc, _ in self.workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.workers = []
        self.busy.clear()

    def __enter__(self) -> PdfPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
