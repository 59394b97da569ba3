"""Feature tables: hourly rollups by meter and by grid asset, calendar and weather joins."""
