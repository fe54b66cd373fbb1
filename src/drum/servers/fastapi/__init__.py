"""servers/fastapi layer."""
