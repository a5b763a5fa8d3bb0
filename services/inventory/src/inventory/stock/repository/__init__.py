"""Stock queries, one module per concept.

``levels`` reads and locks stock rows for the admin routes and the catalog, through
SQLAlchemy. The order saga's steps (``claims``, ``locks``, ``writes``) are the worker's hot
path: fixed SQL texts on the driver connection (``shared.db.driver_connection``), prepared
once per connection, rows travelling as arrays so one text serves any number of lines; the
ORM neither sees nor flushes what they write. ``writes.write_run`` is the one statement
that changes stock levels and records their ledger entries.

Every statement that locks stock rows locks them in sku order (Postgres locks rows as the
sorted result is produced), and reservation rows before stock rows, so two transactions
never take the same locks in opposite orders and never deadlock.
"""
