"""Letters (政策礼包): build one letter per taxpayer from findings, render it, write the outbox and
print files, deliver it and remember what was told (the suppression ledger).

    build.py        the letter model from a taxpayer's findings rows
    formatting.py   Chinese conventions: amounts, dates, periods, masked ids, "why you qualify" lines
    render.py       Jinja2 in a sandbox, per-letter time and size bounds
    pdf.py          PDFs laid out by Typst in bounded worker processes, read back
    print_files.py  one print-ready file per tax authority and night, with a cover sheet
    outbox.py       the file back-end: folders per channel, manifest, preview page
    delivery.py     SMTP and webhook back-ends with retries; deliveries.py their log
    suppression.py  what was told to whom, so the same news is not sent twice
    run.py          `notify`: findings → letters → outbox → delivery → ledger
    commands.py     `zhixiang notify`
"""
