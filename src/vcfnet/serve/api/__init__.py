"""HTTP layer: dependencies (``deps``) and routes (``routes``)."""
