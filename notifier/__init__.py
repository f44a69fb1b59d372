"""The notifier: findings in, acts of the tax bureau out.

    letters/   the 政策礼包: building each taxpayer's letter, rendering (HTML, text, SMS, PDF), the
               outbox, print files, delivery back-ends and the suppression ledger (what was told to whom)
    cases/     the risk-review case ledger: cases from findings, the officers' workflow, queries and
               the task lists per tax authority
    nightly/   the scheduled nightly: its pipeline, run ledger and locks, scheduler, configuration,
               logs, run-to-run diff and the run report
    whatif/    the what-if command and its report (参数调整测算)
    db.py      the state database shared by all of them; workers.py worker processes that die with us
    templates/ the bundled templates (a bureau may override them with its own folder)
"""
