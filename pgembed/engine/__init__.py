"""The engine: what pgembed does with a collection, one module per concern (its codecs' life cycle, ingest,
indexes, search, batches, tuning, workload advice). Each takes a CollectionContext: the collection on one
session, with what pgembed cached of the catalog."""
