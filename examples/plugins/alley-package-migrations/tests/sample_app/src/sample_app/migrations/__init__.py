"""alley migrations of sample_app, read by alley-package-migrations (never imported)."""
