"""simfarm."""
