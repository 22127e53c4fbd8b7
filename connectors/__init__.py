"""The edges of the bus: ingress, client, webhooks, audit sink, simulated partners, replay."""
