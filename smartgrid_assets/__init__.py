"""SmartGrid Analytics: a Dagster data-asset platform for smart-meter (AMI) analytics."""

from smartgrid_assets.settings import select_arrow_memory_pool, select_dagster_planned_events

select_arrow_memory_pool()
select_dagster_planned_events()
