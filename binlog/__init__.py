"""The binlog reader: a producer like the ingress. It tails the primary's binlog and publishes every
transaction as a row-form change event."""
