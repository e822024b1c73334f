"""pc-plots: data/MC plots with systematic bands and a browsable HTML report."""
