"""免申即享: reliefs the bureau applies itself (rules with `apply: {mode: automatic}`).

An eligible taxpayer who has not enjoyed such a relief (应享未享) is not asked to claim it. The nightly puts
the finding on an auto-apply list per tax authority (`lists.py`: CSV for Excel and .xlsx) for the collection
system, and records it in the ledger (`ledger.py`, a table of the state database) as *listed*; the
collection system's confirmation file (`confirm.py`, `zhixiang autoapply confirm FILE`) moves it to
*applied*. Once applied, the taxpayer's 政策礼包 says "已为您自动享受…" (notifier/letters).
"""
