-- Runs once, when the mysql-primary data volume is first initialised.
-- Kept out of the binlog: the binlog reader must not ship account setup to the targets.
SET SESSION sql_log_bin = 0;

-- Application user (the ingress forwards client sessions as this user; dbmux verify reads as it).
-- mysql_native_password: PyMySQL/aiomysql clients authenticate without TLS or the cryptography package.
CREATE USER IF NOT EXISTS 'dbmux'@'%' IDENTIFIED WITH mysql_native_password BY 'dbmux-app-secret';
GRANT ALL PRIVILEGES ON *.* TO 'dbmux'@'%' WITH GRANT OPTION;

-- Binlog reader user ([primary] binlog_url).
CREATE USER IF NOT EXISTS 'dbmux_repl'@'%' IDENTIFIED WITH mysql_native_password BY 'dbmux-repl-secret';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO 'dbmux_repl'@'%';

FLUSH PRIVILEGES;
