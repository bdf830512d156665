"""Floor 1: configuration, metadata store, artifact store, lineage, audit and errors."""
