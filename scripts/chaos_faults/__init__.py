"""The fault matrix of `scripts/chaos`: each fault of the isolation issue against a real deployment under load."""
