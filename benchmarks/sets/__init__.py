"""Generated evaluation sets in the ArtiFact layout, made differently from the demo data and from each other."""
