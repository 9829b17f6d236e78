"""whypref\x27s library: data model, concept store, importers, statistics, regression, explanations."""
