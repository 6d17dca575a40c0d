"""Searching a force's own records: blind-index lookup, re-check, and policy enforcement."""
