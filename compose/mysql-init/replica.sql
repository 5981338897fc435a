-- Runs once, when a mysql-replicaN data volume is first initialised.
-- No native replication is configured here on purpose: dbmux (dbmux-replicate-replicaN) is the
-- replication of these servers.
SET SESSION sql_log_bin = 0;

-- The replicator applies changes and stores its Kafka position as this user.
CREATE USER IF NOT EXISTS 'dbmux'@'%' IDENTIFIED WITH mysql_native_password BY 'dbmux-app-secret';
GRANT ALL PRIVILEGES ON *.* TO 'dbmux'@'%' WITH GRANT OPTION;

FLUSH PRIVILEGES;
