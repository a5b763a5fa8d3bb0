"""Users, passwords and tokens: who may call the platform."""
