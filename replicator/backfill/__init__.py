"""``dbmux backfill``: seed a new target from one consistent snapshot of the primary, then hand it to its
replicator at exactly the snapshot's GTID position. ``run`` holds the run (and the whole story),
``snapshot`` the source side, ``catchup`` resuming, ``targets`` the MySQL and PostgreSQL writers,
``record`` the stored progress."""
