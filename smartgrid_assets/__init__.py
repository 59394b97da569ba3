"""SmartGrid Analytics: a Dagster data-asset platform for smart-meter (AMI) analytics."""
