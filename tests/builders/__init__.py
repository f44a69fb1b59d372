"""Builders of test data shared by several test modules (not tests themselves)."""
