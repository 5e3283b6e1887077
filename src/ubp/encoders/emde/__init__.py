"""EMDE: decayed per-user counts of items over buckets of a data-adaptive hash of Cleora item vectors."""
