"""Alembic migrations of the fhir-cm store, run by ``fhir_cm.store.open_store`` (see ``_migrate``)."""
