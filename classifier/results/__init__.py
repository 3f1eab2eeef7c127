"""What goes out: rows, observations and sequences, exports, annotated photos, evaluation reports and performance, the review of a batch, and the step-by-step account of an answer."""
