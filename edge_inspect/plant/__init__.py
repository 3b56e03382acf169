"""The plant layer: appliances sync their defect logs to one PostgreSQL and one S3 bucket, one plant view
reads them, and models roll out from the plant to lines with automatic rollback. See docs/PLANT.md.

Each box stays fully useful on its own: the sync is store-and-forward from the local defect log.
"""
