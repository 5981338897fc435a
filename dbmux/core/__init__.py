"""The core: the change-event model and codec, config, GTIDs, topic naming, DSNs, errors, database
connect helpers and the MySQL lexer. It imports no other first-party package."""
