"""The crypto benchmark runs end to end and reports every figure (no timing assertions)."""

from __future__ import annotations

from bench.crypto_bench import main


def test_quick_benchmark_reports_field_and_raw_rates() -> None:
    figures = main(quick=True)
    assert figures["fields_per_record"] >= 10
    for name in (
        "field_encrypt_records_per_s",
        "raw_aesgcm_encrypt_records_per_s",
        "field_decrypt_records_per_s",
        "raw_aesgcm_decrypt_records_per_s",
        "blind_index_records_per_s",
        "encrypt_overhead_ratio",
        "decrypt_overhead_ratio",
    ):
        assert figures[name] > 0, name
