"""The node's audit log: writing s.62 entries for every operation, and the auditors' API and CLI."""
