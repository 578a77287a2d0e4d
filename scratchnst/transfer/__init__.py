"""A whole stylization run: images in, optimised image out.

    settings.py   every choice of a run, validated
    loop.py       stylize(): levels, starting image, optimisation, checkpoints
    estimate.py   memory and time of a run, before it starts
"""
