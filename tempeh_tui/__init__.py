"""tempeh."""
