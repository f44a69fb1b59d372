"""Risk-review cases: findings in, cases out, the officers' moves on them ("低风险预提醒、中高风险严监控").

    ledger.py    cases from findings (sync), assignment and resolution, with history
    status.py    the workflow table: statuses and who may move a case where
    tables.py    the ledger's tables in the state database
    bulk.py      bulk writes (executemany / COPY) for tens of thousands of rows
    queries.py   reading the ledger: case lists, one case, each rule's precision
    tasks.py     task lists per tax authority (Excel and CSV)
    commands.py  `zhixiang cases …`
"""
