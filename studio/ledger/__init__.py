"""The usage ledger: plans, reservations, charges and the append-only event log (SQLAlchemy 2.0)."""
