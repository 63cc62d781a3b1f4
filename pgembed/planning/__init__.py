"""Pure planning: search knobs, filters and their identity, plans as the server's planner returns them, and
the cost model of batches and workloads. Nothing here touches a connection."""
