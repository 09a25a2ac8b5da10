"""An application that ships its alley migrations in its wheel (sample_app.migrations)."""
