"""One module per visual-token method; all are :class:`~ctxcomp.vision.VisualTokenPruner`."""
