"""A whole stylization run: images in, optimised image out.

    settings.py   every choice of a run, validated
    levels.py     what changes from one coarse-to-fine level to the next: sizes, starting image, colour
    loop.py       stylize(): the run's steps, level by level, with checkpoints and Ctrl-C
    estimate.py   memory and time of a run, before it starts
"""
