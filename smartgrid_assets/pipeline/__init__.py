"""The pipeline's steps as plain Python over the platform; Dagster assets only call these."""
