"""The officer workbench and service API (`zhixiang serve`): accounts, pages and /api/v1 on the state database.

Imports profiles, engine and notifier; nothing in those imports it (only the CLI wires it in).
"""
