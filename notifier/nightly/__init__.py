"""The scheduled nightly: one business day's whole pipeline, idempotent and crash-safe.

    pipeline.py       snapshot → evaluate → diff → cases → letters → report, each stage in the run ledger
    runs.py           the run ledger and the locks (one nightly per state database)
    scheduler.py      `zhixiang schedule` (APScheduler cron trigger)
    config.py         the TOML configuration, validated by pydantic
    logs.py           JSON and human logs with taxpayer ids masked
    diff.py           what each finding did since the previous successful run
    report.py         the run report (HTML), with report_charts.py's inline SVG charts
    commands.py       `zhixiang nightly`, `schedule`, `runs`
"""
