"""Training recipes shared by the book chapters and the results tests: one module per chapter,
named after it (``decoder``, ``encoder``, ``multimodal``, ``rnn_vs_transformer``, ``seq2seq``).

Recipes run experiments; nothing else in ``course_lib`` imports them (``tests/test_packaging.py``).
"""
