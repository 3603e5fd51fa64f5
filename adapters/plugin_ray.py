"""Entry-point plugin placeholder for ray (filled in by its issue)."""
