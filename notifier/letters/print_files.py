"""Print files: the night's post letters of one tax authority as one PDF, with a cover sheet listing them.

The print shop's input: `OUT/print/<date>-<authority code>.pdf` holds the cover sheet (every letter with
its taxpayer, reference, first page and page count) and then the letters, each starting on a fresh
sheet for duplex printing (a blank page follows a letter or cover with an odd number of pages). The
cover is laid out by Typst from `print_cover.typ` in the PDF workers, like the letters; the letters'
own PDFs (already checked) are copied in unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from notifier.letters.build import Letter
from notifier.letters.formatting import format_date
from notifier.letters.pdf import PdfJob, PdfPool, cover_json

PRINT_DIR = "print"
COVER_TEMPLATE = "print_cover.typ"
#: The cover's time bound grows with the letters it lists (~0.4 ms of layout a row; 20 ms leaves room for a
#: loaded machine): 2,500 letters, a 1M-taxpayer night's tax authority, get 50 s on top of the letter's 20 s.
COVER_SECONDS_PER_LETTER = 0.02


@dataclass(frozen=True)
class PrintFile:
    authority: str
    file: str  # relative to the outbox
    letters: int
    pages: int  # including the cover and blank pages

    def summary(self) -> dict[str, Any]:
        return {"tax_authority": self.authority, "file": self.file, "letters": self.letters, "pages": self.pages}


def _stem(authority: str, code: str) -> str:
    text = code or authority
    return "".join(ch if ch.isalnum() else "_" for ch in text) or "_"


def write_print_files(root: Path, post: Mapping[str, Sequence[tuple[Letter, str]]], *, as_of: date,
                      pool: PdfPool, warnings: list[str]) -> list[PrintFile]:
    """One print file per tax authority from the post letters written in the outbox (`post`: name → letters)."""
    import pikepdf  # qpdf: copies a letter's pages ~20x faster than pypdf

    out: list[PrintFile] = []
    folder = root / PRINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for authority, items in sorted(post.items()):
        docs = []
        rows = []
        start = 1
        for no, (letter, rel) in enumerate(sorted(items, key=lambda i: i[0].taxpayer_id), start=1):
            doc = pikepdf.open(root / rel)
            pages = len(doc.pages)
            docs.append(doc)
            rows.append({"no": no, "name": letter.name, "masked_id": letter.masked_id,
                         "reference": letter.reference, "start": start, "pages": pages})
            start += pages + pages % 2
        code = items[0][0].authority.code
        job = PdfJob("cover", cover_json(authority, format_date(as_of), rows, sheets=start - 1), (authority,),
                     label=f"{authority}打印封面", main=COVER_TEMPLATE, timeout=COVER_SECONDS_PER_LETTER * len(rows))
        cover = pool.render([job])["cover"]
        if not isinstance(cover, bytes):
            warnings.append(f"{authority} 的邮寄打印文件未生成：{cover}")
            continue
        merged = pikepdf.open(io.BytesIO(cover))
        size = merged.pages[0].mediabox
        blank = (float(size[2]) - float(size[0]), float(size[3]) - float(size[1]))
        if len(merged.pages) % 2:
            merged.add_blank_page(page_size=blank)
        for doc in docs:
            merged.pages.extend(doc.pages)
            if len(doc.pages) % 2:  # the next letter starts on a fresh sheet
                merged.add_blank_page(page_size=blank)
        rel = f"{PRINT_DIR}/{as_of:%Y%m%d}-{_stem(authority, code)}.pdf"
        # the letters' streams are copied as they are (already compressed), not decoded and compressed again
        merged.save(root / rel, stream_decode_level=pikepdf.StreamDecodeLevel.none, fix_metadata_version=False)
        out.append(PrintFile(authority, rel, len(rows), len(merged.pages)))
        for doc in docs:
            doc.close()
    return out
