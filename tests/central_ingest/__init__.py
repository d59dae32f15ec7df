"""Central ingest: shared subscriptions across workers, rejection of mismatched uplinks, secret key."""
