"""Entry-point plugin placeholder for the attacks (filled in by its issue)."""
