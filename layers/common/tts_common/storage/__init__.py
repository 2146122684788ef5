"""Task records in DynamoDB (PynamoDB): one table holds tasks, dedupe claims and the stats counters."""
