"""Constants shared by the whole library, so that each has one name and one value.

``IGNORE_INDEX``: a label that asks for no loss (padding, a prompt, an unmasked token). It is
the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``, so a loss is one line.
"""
IGNORE_INDEX = -100
