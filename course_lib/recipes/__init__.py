"""Training recipes shared by the book chapters and the results tests: one place per experiment."""
