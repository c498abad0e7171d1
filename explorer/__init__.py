"""Everything a person looks at: projections, views, the β_Aug tuning procedure. Depends on `core`."""
