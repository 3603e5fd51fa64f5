"""Entry-point plugin placeholder for art (filled in by its issue)."""
