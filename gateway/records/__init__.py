"""A force's own records: storage with field-level encryption, blind indexes, and the sync API."""
