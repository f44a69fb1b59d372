"""What-if runs (参数调整测算): the `zhixiang whatif` command and its HTML report.

The computation itself is engine/whatif.py; this package only parses the command and lays out the report.
"""
