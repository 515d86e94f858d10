"""One thin entry per stage: ``python -m pipeline.<stage>`` (what ``make <stage>`` runs)."""
