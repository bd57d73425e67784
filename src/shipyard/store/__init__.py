"""Persistence: the metadata store (SQLAlchemy), the artifact store (fsspec) and tabular files."""
