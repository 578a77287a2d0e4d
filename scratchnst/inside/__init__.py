"""Seeing inside VGG19: what its units respond to.

    receptive_fields.py   where in the input a unit looks, from the architecture
    patches.py            the most active channels; the image patches a unit likes most
    synthesis.py          images made by gradient steps: unit maximisation, reconstructions
    figures.py            matplotlib figures of all of these, saved atomically
"""
