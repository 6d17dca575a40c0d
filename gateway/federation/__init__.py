"""Node-to-node federation: the signed protocol, federated search fan-out, two-step disclosure,
both-sides audit with receipts, witness cosigning and reconciliation.

The trust registry itself (the signed manifest) lives in `gateway.federation.manifest`.
"""
