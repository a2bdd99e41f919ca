"""Vehicle triggers: CEL conditions on readings and app events, signed webhooks, durable outbox."""
