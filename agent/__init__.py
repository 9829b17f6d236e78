"""The LangGraph discovery agent: propose -> merge -> annotate -> fit -> validate, driven by the regression."""
