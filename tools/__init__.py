"""whypref's library: data model, concept store, importers, statistics, regression, explanations."""
